"""The curl examples of services/gateway/README.md run, in order, against a real gateway."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "gateway" / "README.md"


def _examples() -> str:
    blocks = sh_blocks(README)
    assert len(blocks) >= 5, "the README has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    async with gateway_api(start_service) as api:
        await run_examples(_examples(), base=api.base, token=api.admin, cwd=tmp_path)
        assert '"openapi":"3.1.0"' in (tmp_path / "openapi.json").read_text()
        user = await api.call("GET", "/api/v1/users/octocat")
        assert {e["email"]: e["verified"] for e in user.body["emails"]} == {
            "octocat@example.org": True,
            "cat@example.org": False,
        }
        project = await api.call("GET", "/api/v1/projects/web")
        assert project.body["description"] == "The storefront" and project.body["archived"]
        keys = await api.call("GET", "/api/v1/api-keys?include_revoked=true")
        ci = next(k for k in keys.body["items"] if k["name"] == "ci-web")
        assert ci["revoked_at"] is not None and ci["project_id"] == project.body["id"]
