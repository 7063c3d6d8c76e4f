"""offboard: an MSP customer's exit from security vendors, planned, executed, verified and proven."""

__version__ = "0.1.0"
