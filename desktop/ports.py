"""The ports the desktop is reached on and reaches EFS on."""

SSH_PORT = 22
DCV_PORT = 8443  # TCP for HTTPS/WebSocket, UDP for QUIC
NFS_PORT = 2049
