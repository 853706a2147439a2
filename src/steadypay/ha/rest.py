"""A small client of Patroni's REST API: what a member says of itself, and the switchover
and failover requests. Blocking (httpx); every call has a deadline."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from steadypay.ha.layout import REST_USER, ClusterError, ClusterLayout, MemberSpec

#: Reading a member's state: a member that does not answer within this is reported as such.
READ_TIMEOUT_S = 2.0
#: Patroni answers a switchover or failover once it is done or has failed (it polls up to
#: about 30 s itself); our deadline is a little longer.
ACTION_TIMEOUT_S = 45.0


class PatroniRest:
    """Talks to the members of one cluster over loopback HTTP."""

    def __init__(self, layout: ClusterLayout, rest_password: str) -> None:
        self._layout = layout
        self._client = httpx.Client(
            auth=httpx.BasicAuth(REST_USER, rest_password),
            timeout=httpx.Timeout(READ_TIMEOUT_S),
            trust_env=False,  # loopback only: no proxy from the environment
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def url(self, spec: MemberSpec, path: str) -> str:
        host = f"[{self._layout.host}]" if ":" in self._layout.host else self._layout.host
        return f"http://{host}:{spec.rest_port}{path}"

    def member_state(self, spec: MemberSpec) -> dict[str, Any] | None:
        """``GET /patroni`` of ``spec``: its own view of itself; None if it does not answer.

        A member answers 503 while its PostgreSQL is not running; the body still says why.
        A body naming another member (a stranger on the port) counts as no answer.
        """
        try:
            response = self._client.get(self.url(spec, "/patroni"))
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("patroni", {}).get("name") != spec.name:
            return None
        return body

    def cluster_view(self, specs: tuple[MemberSpec, ...]) -> dict[str, Any] | None:
        """``GET /cluster`` (the DCS's view: leader, quorum) from the first member answering."""
        for spec in specs:
            try:
                response = self._client.get(self.url(spec, "/cluster"))
                body = response.json()
            except (httpx.HTTPError, ValueError):
                continue
            if response.status_code == 200 and isinstance(body, dict):
                return body
        return None

    def switchover(self, via: MemberSpec, leader: str, candidate: str | None) -> str:
        body: dict[str, str] = {"leader": leader}
        if candidate is not None:
            body["candidate"] = candidate
        return self._post(via, "/switchover", body)

    def failover(self, via: MemberSpec, candidate: str) -> str:
        return self._post(via, "/failover", {"candidate": candidate})

    def patch_config(self, via: MemberSpec, changes: Mapping[str, Any]) -> None:
        """``PATCH /config``: merge ``changes`` into the dynamic configuration in the DCS."""
        self._send("PATCH", via, "/config", changes, timeout=READ_TIMEOUT_S * 3)

    def pause(self, members: Sequence[MemberSpec], timeout: float) -> bool | None:
        """Enter maintenance mode (Patroni acts no more: no failover, no stopping PostgreSQL
        on exit). None if no member could write it to the DCS; else whether every one of
        ``members`` says it is paused within ``timeout``."""
        for spec in members:
            try:
                self.patch_config(spec, {"pause": True})
            except ClusterError:
                continue  # this one cannot reach a Raft quorum: try another
            deadline = time.monotonic() + timeout
            while not all((self.member_state(m) or {}).get("pause") is True for m in members):
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
            return True
        return None

    def resume(self, members: Sequence[MemberSpec], deadline: float) -> None:
        """Leave maintenance mode, retrying until a member has a Raft quorum to write it."""
        problem = "no member answered"
        while True:
            for spec in members:
                try:
                    self.patch_config(spec, {"pause": False})
                    return
                except ClusterError as exc:
                    problem = str(exc)
            if time.monotonic() >= deadline:
                raise ClusterError(f"could not leave maintenance mode: {problem}")
            time.sleep(0.2)

    def _post(self, via: MemberSpec, path: str, body: dict[str, str]) -> str:
        return self._send("POST", via, path, body)

    def _send(
        self,
        method: str,
        via: MemberSpec,
        path: str,
        body: Mapping[str, Any],
        timeout: float = ACTION_TIMEOUT_S,
    ) -> str:
        url = self.url(via, path)
        try:
            response = self._client.request(method, url, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ClusterError(f"{method} {url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise ClusterError(
                f"Patroni refused {method} {path} {dict(body)} with {response.status_code}: "
                f"{response.text.strip()[:500]}"
            )
        return response.text.strip()
