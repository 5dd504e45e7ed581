# The backup host: the project's backup repository (restic's), which its app hosts write
# over SFTP, encrypted with secret BACKUP_PASSWORD (theirs; this host never sees it).
backup_server = True
