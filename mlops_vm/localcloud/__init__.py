"""The local cloud (the local test platform): locally built images, the project CA and a
TLS registry.

Everything here runs on one machine with a Docker engine and no access to any container
registry: images are built from a debootstrap root filesystem, and the model image is served
to the VMs by a registry container that only speaks TLS.
"""
