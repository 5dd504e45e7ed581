# The files host: the project's uploads (MEDIA), written by its app hosts over SFTP and
# served by its front on port, to the balancers, which send /media/ there.
files_server = True
port = 80
