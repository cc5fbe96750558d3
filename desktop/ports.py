"""The ports the desktop is reached on, and reaches EFS and FSx for Lustre on."""

SSH_PORT = 22
DCV_PORT = 8443  # TCP for HTTPS/WebSocket, UDP for QUIC
NFS_PORT = 2049
LUSTRE_PORT = 988  # FSx for Lustre: clients and file servers
LUSTRE_PORT_RANGE = (1018, 1023)  # and these, between them
