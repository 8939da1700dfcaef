"""The reference app's migrations: each migrations/NNN_*.sql not yet applied,
in order, each in one transaction, recorded in schema_migrations. Connects
with the PG* variables (psql reads them), as any migration tool would."""
import os
import subprocess
import sys

PSQL = ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-At"]


def psql(*args):
    out = subprocess.run(PSQL + list(args), capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"migrate: {out.stderr.strip()}")
    return out.stdout


def main():
    psql("-c", "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY)")
    applied = set(psql("-c", "SELECT name FROM schema_migrations").split())
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
    for name in sorted(f for f in os.listdir(here) if f.endswith(".sql")):
        if name in applied:
            continue
        psql("--single-transaction", "-f", os.path.join(here, name), "-c",
             f"INSERT INTO schema_migrations (name) VALUES ('{name}')")
        print(f"migrate: applied {name}")


if __name__ == "__main__":
    main()
