"""Model versions and the champion alias: list, promote, roll back (atomic, history kept)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from churnguard.registry import (
    CHAMPION,
    alias_history,
    alias_version,
    get_model_version,
    list_models,
    set_alias,
)
from churnguard.service.auth import require
from churnguard.service.errors import ApiError, error_responses
from churnguard.service.schemas import AliasChangeOut, ChampionOut, ModelOut, ModelsOut
from churnguard.service.state import ServiceState, service_of
from churnguard.store import Store

router = APIRouter(prefix="/v1/models", tags=["models"])

PROMOTED = "promoted via the API"
ROLLED_BACK = "rolled back via the API"
_AUTH = ("missing_api_key", "invalid_api_key", "forbidden", "rate_limited")


def promotion_stack(history: list[dict]) -> list[str]:
    """The champion's versions, oldest first, as promotions pushed and rollbacks popped them.

    >>> promotion_stack([{"version": "a", "reason": "first model"},
    ...                  {"version": "b", "reason": PROMOTED},
    ...                  {"version": "a", "reason": ROLLED_BACK}])
    ['a']
    """
    stack: list[str] = []
    for change in history:
        if change["reason"] == ROLLED_BACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != change["version"]:
                stack.append(change["version"])
        elif not stack or stack[-1] != change["version"]:
            stack.append(change["version"])
    return stack


def _models(store: Store) -> ModelsOut:
    champion = alias_version(store, CHAMPION)
    return ModelsOut(
        champion=champion,
        models=[ModelOut(version=m.version, name=m.name, created_at=m.created_at,
                         is_champion=m.version == champion, config=m.config,
                         data_window=m.data_window, metrics=m.metrics)
                for m in list_models(store)],
        history=[AliasChangeOut(**h) for h in alias_history(store, CHAMPION)])


@router.get("", response_model=ModelsOut, summary="Model versions, the champion and its history",
            responses=error_responses(*_AUTH))
def get_models(_role: str = Depends(require("read")),
               service: ServiceState = Depends(service_of)) -> ModelsOut:
    with service.pool.reading() as store:
        return _models(store)


@router.post("/rollback", response_model=ChampionOut, summary="Make the previous champion the "
             "champion again", responses=error_responses("no_previous_model", *_AUTH))
def rollback(_role: str = Depends(require("admin")),
             service: ServiceState = Depends(service_of)) -> ChampionOut:
    """Undo the newest promotion still in force (repeatable: each call goes one step further
    back). The alias moves in one transaction and the move is added to the history."""
    with service.pool.reading() as store, service.pool.write_lock:
        stack = promotion_stack(alias_history(store, CHAMPION))
        current = alias_version(store, CHAMPION)
        if len(stack) < 2 or current is None:
            raise ApiError("no_previous_model", "there is no earlier champion to go back to")
        target = stack[-2]
        set_alias(store, CHAMPION, target, reason=ROLLED_BACK)
    service.risk.champion_changed()
    return ChampionOut(champion=target, previous=current, changed=True)


@router.post("/{version}/promote", response_model=ChampionOut, summary="Make a version the "
             "champion", responses=error_responses("invalid_request", "model_not_found", *_AUTH))
def promote(version: str = Path(min_length=1, max_length=200),
            _role: str = Depends(require("admin")),
            service: ServiceState = Depends(service_of)) -> ChampionOut:
    """Point the champion alias at ``version`` (one transaction, recorded in the history).
    Promoting the current champion changes nothing."""
    with service.pool.reading() as store, service.pool.write_lock:
        get_model_version(store, version)  # RegistryError: errors.py answers model_not_found
        current = alias_version(store, CHAMPION)
        if current == version:
            return ChampionOut(champion=version, previous=current, changed=False)
        set_alias(store, CHAMPION, version, reason=PROMOTED)
    service.risk.champion_changed()
    return ChampionOut(champion=version, previous=current, changed=True)
