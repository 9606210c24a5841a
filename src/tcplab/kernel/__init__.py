"""Reading what the kernel holds: sock_diag (netlink), /proc and psutil, sysctls, namespaces."""
