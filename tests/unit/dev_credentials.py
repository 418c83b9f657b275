"""The development overlay's well-known credentials and the files made from them.

python -m tests.unit.dev_credentials     # rewrites k8s/overlays/dev/nats.conf and roles.sql
"""

from __future__ import annotations

from shared.bus_permissions import OPS_USER, SERVICE_USERS, NatsUser, server_config
from tests.conftest import ROOT

DEV = ROOT / "k8s" / "overlays" / "dev"


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


if __name__ == "__main__":
    (DEV / "nats.conf").write_text(nats_conf())
    (DEV / "roles.sql").write_text(roles_sql())
