"""Users (people whose commits are verified) and their e-mail addresses.

Any role reads; only ADMIN writes. Users are not per-project: project-scoped keys cannot use
these routes.
"""

from __future__ import annotations

from aiohttp import web

from contracts.events.identity import UserCreated, UserEmailAdded, UserEmailVerified
from services.gateway.adapters.read_model import email_owner, find_user
from services.gateway.deps import deps_of
from services.gateway.domain.errors import EmailNotFound, EmailTaken, LoginTaken, UserNotFound
from services.gateway.domain.users import check_distinct_emails, email_key
from services.gateway.dto import EmailAdd, UserCreate, UserView
from services.gateway.routing import ADMIN_ONLY, READ_ROLES, RequestContext, Route
from shared.applied_commands import AppliedCommand
from shared.http import json_response

# Every user write takes this one lock: a login and an address each belong to one user, and
# writes are rare enough that finer locks would buy nothing.
USERS_LOCK = "users"


def _answer(user: UserView, *, status: int = 200) -> web.Response:
    headers = {"Location": f"/api/v1/users/{user.login}"} if status == 201 else None
    return json_response(user, status=status, headers=headers)


async def create_user(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, UserCreate)

    async def created_before(_: AppliedCommand) -> web.StreamResponse:
        return _answer(await _user(ctx, body.login), status=201)

    return await deps_of(ctx).writer.once(
        ctx.command_id, first=lambda: _create_user(ctx), again=created_before
    )


async def _create_user(ctx: RequestContext) -> web.StreamResponse:
    deps, body = deps_of(ctx), ctx.body
    assert isinstance(body, UserCreate)
    check_distinct_emails([e.email for e in body.emails])
    async with deps.writer.locked(USERS_LOCK) as conn:
        if await find_user(conn, body.login) is not None:
            raise LoginTaken(f"the login {body.login!r} is already in use")
        for entry in body.emails:
            owner = await email_owner(conn, entry.email)
            if owner is not None:
                raise EmailTaken(f"{entry.email} belongs to user {owner!r}")
        await deps.writer.emit(
            UserCreated(login=body.login, name=body.name, emails=list(body.emails)),
            aggregate=f"user:{body.login.lower()}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    return _answer(await _user(ctx, body.login), status=201)


async def _user(ctx: RequestContext, login: str) -> UserView:
    user = await find_user(deps_of(ctx).pool, login)
    if user is None:
        raise UserNotFound(login)
    return user


async def get_user(ctx: RequestContext) -> web.StreamResponse:
    return _answer(await _user(ctx, ctx.request.match_info["login"]))


async def add_email(ctx: RequestContext) -> web.StreamResponse:
    deps, body = deps_of(ctx), ctx.body
    assert isinstance(body, EmailAdd)
    login = ctx.request.match_info["login"]
    async with deps.writer.locked(USERS_LOCK) as conn:
        user = await find_user(conn, login)
        if user is None:
            raise UserNotFound(login)
        owner = await email_owner(conn, body.email)
        if owner is not None:
            whose = "this user" if owner == user.login else f"user {owner!r}"
            raise EmailTaken(f"{body.email} belongs to {whose} already")
        await deps.writer.emit(
            UserEmailAdded(login=user.login, email=body.email, verified=body.verified),
            aggregate=f"user:{user.login.lower()}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    return _answer(await _user(ctx, login), status=201)


async def verify_email(ctx: RequestContext) -> web.StreamResponse:
    deps = deps_of(ctx)
    login, email = ctx.request.match_info["login"], ctx.request.match_info["email"]
    async with deps.writer.locked(USERS_LOCK) as conn:
        user = await find_user(conn, login)
        if user is None:
            raise UserNotFound(login)
        entry = next((e for e in user.emails if email_key(e.email) == email_key(email)), None)
        if entry is None:
            raise EmailNotFound(user.login, email)
        if not entry.verified:  # verifying twice is a no-op
            await deps.writer.emit(
                UserEmailVerified(login=user.login, email=entry.email),
                aggregate=f"user:{user.login.lower()}",
                actor=ctx.actor,
                correlation_id=ctx.request_id,
            )
    return _answer(await _user(ctx, login))


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/users",
        handler=create_user,
        roles=ADMIN_ONLY,
        summary="Create a user with e-mail addresses (login and addresses are unique)",
        tag="users",
        body=UserCreate,
        response=UserView,
        response_status=201,
        errors=(409,),
    ),
    Route(
        method="GET",
        path="/api/v1/users/{login}",
        handler=get_user,
        roles=READ_ROLES,
        summary="Read a user and their e-mail addresses",
        tag="users",
        response=UserView,
        errors=(404,),
    ),
    Route(
        method="POST",
        path="/api/v1/users/{login}/emails",
        handler=add_email,
        roles=ADMIN_ONLY,
        summary="Add an e-mail address to a user",
        tag="users",
        body=EmailAdd,
        response=UserView,
        response_status=201,
        errors=(404, 409),
    ),
    Route(
        method="POST",
        path="/api/v1/users/{login}/emails/{email}/verify",
        handler=verify_email,
        roles=ADMIN_ONLY,
        summary="Mark an e-mail address of a user as verified",
        tag="users",
        response=UserView,
        errors=(404,),
    ),
]
