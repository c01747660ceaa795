"""Virtual networks as records: networks, subnets, ports with their addresses, security
groups. ``ipam`` allocates addresses; ``server_ports`` is what the Compute API uses
to give each server its ports. The data plane that realises them comes later."""
