"""mlops-vm: put a containerised ML model into production behind HTTPS on VMs."""

__version__ = "0.1.0"
