"""Similar past incidents for every card, whichever policy ranks: a memory that grows as incidents resolve."""
