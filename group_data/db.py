# The database server: PostgreSQL (Debian's) for the web hosts, which find it by this flag.
# One per inventory. The web hosts' DATABASE_PASSWORD secret sets its role's password.
database_server = True
