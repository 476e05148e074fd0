"""The world model: service topologies, faults, dynamics, observations, a Gymnasium env."""
