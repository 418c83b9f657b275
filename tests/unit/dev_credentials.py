"""The development overlay's well-known credentials and the files made from them.

python -m tests.unit.dev_credentials     # rewrites k8s/overlays/dev/nats.conf and roles.sql
"""

from __future__ import annotations

import re

from shared.bus_permissions import OPS_USER, SERVICE_USERS, NatsUser, server_config
from tests.conftest import ROOT

DEV = ROOT / "k8s" / "overlays" / "dev"
DEPLOY = ROOT / "deploy"


def dev_password(user: str) -> str:
    return f"{user}-dev"


def dev_users() -> list[NatsUser]:
    users = [NatsUser(name=s, password=dev_password(s), role="service") for s in SERVICE_USERS]
    return [*users, NatsUser(name=OPS_USER, password=dev_password(OPS_USER), role="ops")]


def nats_conf() -> str:
    return server_config(dev_users(), stream="GATEHOUSE")


def roles_sql() -> str:
    lines = ["-- Development only: a role per service owning its schema (see shared/db.py)."]
    for service in SERVICE_USERS:
        schema = service.replace("-", "_")
        role = f"gatehouse_{schema}"
        lines += [
            f"CREATE ROLE {role} LOGIN PASSWORD '{dev_password(service)}';",
            f"CREATE SCHEMA {schema} AUTHORIZATION {role};",
        ]
    lines.append("REVOKE CREATE ON SCHEMA public FROM PUBLIC;")
    return "\n".join(lines) + "\n"


def password_variable(user: str) -> str:
    return "PASSWORD_" + user.upper().replace("-", "_")


def compose_nats_conf() -> str:
    """The users with ``"password": $PASSWORD_<USER>``: an unquoted ``$NAME`` in a NATS
    config is a variable, taken from the environment when the file does not define it."""
    users = [
        NatsUser(name=u.name, password=f"${password_variable(u.name)}", role=u.role)
        for u in dev_users()
    ]
    text = server_config(users, stream="GATEHOUSE")
    return re.sub(r'"password": "(\$PASSWORD_\w+)"', r'"password": \1', text)


def compose_roles_script() -> str:
    lines = [
        "#!/bin/sh",
        "# A role per service owning its schema; the passwords come from PASSWORD_<SERVICE>.",
        "# Written by tests/unit/dev_credentials.py: edit that, not this.",
        "set -eu",
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL',
    ]
    for service in SERVICE_USERS:
        schema = service.replace("-", "_")
        role = f"gatehouse_{schema}"
        lines += [
            f"CREATE ROLE {role} LOGIN PASSWORD '${{{password_variable(service)}}}';",
            f"CREATE SCHEMA {schema} AUTHORIZATION {role};",
        ]
    lines += ["REVOKE CREATE ON SCHEMA public FROM PUBLIC;", "SQL"]
    return "\n".join(lines) + "\n"


def write_all() -> None:
    (DEV / "nats.conf").write_text(nats_conf())
    (DEV / "roles.sql").write_text(roles_sql())
    (DEPLOY / "nats.conf").write_text(compose_nats_conf())
    (DEPLOY / "postgres-roles.sh").write_text(compose_roles_script())
    (DEPLOY / "postgres-roles.sh").chmod(0o755)


if __name__ == "__main__":
    write_all()
