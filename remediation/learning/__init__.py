"""Learned remediation policy: encoding, graph network, training (offline + simulator), ranking."""
