"""convflow's pipeline steps; the contract every step follows is in components/base.py."""
