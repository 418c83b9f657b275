"""Users and their e-mail addresses over HTTP."""

from __future__ import annotations

from tests.conftest import StartService
from tests.integration.test_gateway_support import gateway_api


async def test_user_lifecycle(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        created = await api.call(
            "POST",
            "/api/v1/users",
            json={
                "login": "Octo-Cat",
                "name": "Octo Cat",
                "emails": [{"email": "octo@example.org", "verified": True}, {"email": "o@x.org"}],
            },
        )
        assert created.status == 201, created.body
        assert created.headers["Location"] == "/api/v1/users/Octo-Cat"
        emails = {e["email"]: e for e in created.body["emails"]}
        assert emails["octo@example.org"]["verified"] is True
        assert emails["octo@example.org"]["verified_at"] is not None
        assert emails["o@x.org"]["verified"] is False and emails["o@x.org"]["verified_at"] is None

        # Logins compare without case.
        read = await api.call("GET", "/api/v1/users/octo-cat")
        assert read.status == 200 and read.body["login"] == "Octo-Cat"
        clash = await api.call("POST", "/api/v1/users", json={"login": "OCTO-cat", "name": "x"})
        assert (clash.status, clash.code) == (409, "login_taken")

        added = await api.call("POST", "/api/v1/users/octo-cat/emails", json={"email": "new@x.org"})
        assert added.status == 201
        assert "new@x.org" in {e["email"] for e in added.body["emails"]}
        twice = await api.call("POST", "/api/v1/users/octo-cat/emails", json={"email": "NEW@x.org"})
        assert (twice.status, twice.code) == (409, "email_taken")

        verified = await api.call("POST", "/api/v1/users/octo-cat/emails/new@x.org/verify")
        assert verified.status == 200
        entry = next(e for e in verified.body["emails"] if e["email"] == "new@x.org")
        assert entry["verified"] is True and entry["verified_at"] is not None
        again = await api.call("POST", "/api/v1/users/octo-cat/emails/NEW@x.org/verify")
        assert again.status == 200 and again.body == verified.body  # no-op, nothing recorded

        # An address belongs to one user.
        other = await api.call(
            "POST",
            "/api/v1/users",
            json={"login": "hubot", "name": "Hubot", "emails": [{"email": "o@X.org"}]},
        )
        assert (other.status, other.code) == (409, "email_taken")
        assert (await api.call("GET", "/api/v1/users/hubot")).status == 404

        for method, path, body in (
            ("POST", "/api/v1/users/nobody/emails", {"email": "a@b.org"}),
            ("POST", "/api/v1/users/nobody/emails/a@b.org/verify", None),
            ("POST", "/api/v1/users/octo-cat/emails/unknown@x.org/verify", None),
        ):
            reply = await api.call(method, path, json=body)
            assert (reply.status, reply.code) == (404, "not_found"), path
        bad = await api.call("POST", "/api/v1/users/octo-cat/emails", json={"email": "not-mail"})
        assert bad.status == 422 and bad.body["errors"][0]["field"] == "$.email"


async def test_only_admins_write_users_and_any_role_reads(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        await api.call("POST", "/api/v1/users", json={"login": "reader", "name": "R"})
        _, auditor = await api.new_key("AUDITOR")
        assert (await api.call("GET", "/api/v1/users/reader", token=auditor)).status == 200
        denied = await api.call(
            "POST", "/api/v1/users", token=auditor, json={"login": "x", "name": "x"}
        )
        assert (denied.status, denied.code) == (403, "forbidden")
        assert denied.body["required_roles"] == ["ADMIN"]
