"""Model releases: what a release is, which one an environment runs, and which one to roll.

The rolling itself (batches, drain, health gate, rollback) is playbooks/release.yml; the
load balancer side goes through each provider's deregister/register calls.
"""
