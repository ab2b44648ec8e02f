"""Pushing one image to one repository with the OCI distribution API.

Why: this is the protocol half of the push, kept apart from the command line so its
parts can be read against the spec: check the API, HEAD each blob and upload the missing
ones (POST a session, one monolithic PUT with ?digest=), PUT the manifest under each tag
and check the registry computed the same digest. Authentication answers 401s as they
come (Basic, or a Bearer token for pull+push on the repository); connection failures,
5xx and 429 are retried with backoff, saying so.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

from tools.oci.push.auth import (
    AuthError,
    Challenge,
    Credentials,
    choose_challenge,
    parse_token_response,
    parse_www_authenticate,
    scopes_for,
    token_request,
)
from tools.oci.push.layout import Blob, Image
from tools.oci.push.reference import (
    Endpoint,
    InvalidReference,
    Repository,
    blob_url,
    manifest_url,
    same_origin,
    upload_finish_url,
    upload_start_url,
)
from tools.oci.push.transport import PermanentError, Response, TransientError, Transport

T = TypeVar("T")
Log = Callable[[str], None]
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class PushError(Exception):
    """The push failed; the message names the registry and repository, the request, the
    HTTP status and the registry's own error."""


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all, waiting first_delay, 2×, 4×... between them."""

    attempts: int = 4
    first_delay: float = 1.0

    def delay(self, failed_attempt: int) -> float:
        return self.first_delay * 2 ** (failed_attempt - 1)


def with_retries(
    what: str,
    action: Callable[[], T],
    policy: RetryPolicy,
    log: Log,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`action()`, tried again after a TransientError until `policy.attempts` are used."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except TransientError as err:
            if attempt >= policy.attempts:
                tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                raise PushError(f"{what} failed after {tries}: {err}") from None
            delay = policy.delay(attempt)
            log(
                f"  {what}: {err}; retrying in {delay:g} s "
                f"(attempt {attempt + 1} of {policy.attempts})"
            )
            sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class Session:
    """Requests to one repository, with the Authorization its registry asked for."""

    repo: Repository
    endpoint: Endpoint
    transport: Transport
    lookup_credentials: Callable[[Repository], Credentials | None]
    credential_files: Sequence[Path] = ()
    _authorization: str | None = field(default=None, repr=False)
    _challenge: Challenge | None = None
    _credentials: Credentials | None = field(default=None, repr=False)
    _looked_up: bool = False

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | Blob | None = None,
    ) -> Response:
        """Send; on a 401 from the registry authenticate once as it asks and resend."""
        fresh_auth = False
        while True:
            sent = dict(headers or {})
            if self._authorization and same_origin(url, self.endpoint):
                sent["Authorization"] = self._authorization
            response = self.transport.send(method, url, sent, body)
            if response.status != 401 or not same_origin(url, self.endpoint):
                return response
            if fresh_auth:
                raise PushError(self._refused(method, url, response))
            self._authenticate(method, url, response)
            fresh_auth = True

    def check(self, response: Response, expected: Collection[int], what: str) -> Response:
        if response.status in expected:
            return response
        summary = f"{what}: HTTP {response.status} {response.reason}: {response.error_text()}"
        if response.status >= 500 or response.status == 429:
            raise TransientError(summary)
        raise PushError(f"{self.repo}: {summary}")

    def _creds(self) -> Credentials | None:
        if not self._looked_up:
            try:
                self._credentials = self.lookup_credentials(self.repo)
            except AuthError as err:
                raise PushError(f"{self.repo}: {err}") from None
            self._looked_up = True
        return self._credentials

    def _authenticate(self, method: str, url: str, response: Response) -> None:
        header = response.header("www-authenticate") or ""
        challenge = choose_challenge(parse_www_authenticate(header))
        if challenge is None:
            raise PushError(
                f"{self.repo}: HTTP 401 on {method} {_path(url)} without a Basic or Bearer "
                f"challenge (WWW-Authenticate: {header!r}): {response.error_text()}"
            )
        self._challenge = challenge
        credentials = self._creds()
        if challenge.scheme == "basic":
            if credentials is None:
                raise PushError(
                    f"{self.repo}: {self.repo.registry} requires authentication ({challenge}) "
                    f"and {self._no_credentials()}"
                )
            self._authorization = credentials.basic_header()
        else:
            self._authorization = "Bearer " + self._token(challenge, credentials)

    def _token(self, challenge: Challenge, credentials: Credentials | None) -> str:
        try:
            ask = token_request(challenge, scopes_for(challenge, self.repo.path), credentials)
        except AuthError as err:
            raise PushError(f"{self.repo}: {err}") from None
        realm = challenge.params.get("realm", "")
        response = self.transport.send(ask.method, ask.url, ask.headers, ask.body)
        if response.status == 200:
            try:
                return parse_token_response(response.body, realm)
            except AuthError as err:
                raise PushError(f"{self.repo}: {err}") from None
        who = (
            f"the credentials from {credentials.source}"
            if credentials is not None
            else f"an anonymous request ({self._no_credentials()})"
        )
        summary = (
            f"token endpoint {realm} refused {who}: "
            f"HTTP {response.status} {response.reason}: {response.error_text()}"
        )
        if response.status >= 500 or response.status == 429:
            raise TransientError(summary)
        raise PushError(f"{self.repo}: {summary}")

    def _no_credentials(self) -> str:
        files = ", ".join(str(path) for path in self.credential_files) or "no files"
        return (
            f"no credentials for {self.repo.registry} were found (looked in {files}); "
            f"log in with `docker login {self.repo.registry}` or `podman login`"
        )

    def _refused(self, method: str, url: str, response: Response) -> str:
        where = f"HTTP 401 on {method} {_path(url)}: {response.error_text()}"
        credentials = self._credentials
        source = credentials.source if credentials is not None else None
        if self._challenge is not None and self._challenge.scheme == "bearer":
            realm = self._challenge.params.get("realm", "?")
            who = f"credentials from {source}" if source else "no credentials"
            return (
                f"{self.repo}: the registry refused the token from {realm} ({who}); "
                f"the account may lack push access to {self.repo.path}: {where}"
            )
        return f"{self.repo}: {self.repo.registry} refused the credentials from {source}: {where}"


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path


def check_api(session: Session) -> None:
    """GET /v2/: the registry speaks the distribution API, and tells how to authenticate."""
    url = f"{session.endpoint.base}/v2/"
    session.check(session.request("GET", url), {200}, f"GET /v2/ at {session.endpoint.base}")


def blob_exists(session: Session, blob: Blob) -> bool:
    url = blob_url(session.endpoint, session.repo, blob.digest)
    for _ in range(5):
        response = session.request("HEAD", url)
        location = response.header("location")
        if response.status in _REDIRECTS and location:
            url = urljoin(url, location)  # e.g. to storage; no credentials go there
            continue
        if response.status == 404:
            return False
        session.check(response, {200}, f"HEAD {_path(url)}")
        return True
    raise PushError(f"{session.repo}: HEAD of blob {blob.digest}: too many redirects")


def upload_blob(session: Session, blob: Blob) -> None:
    """POST an upload session, then PUT the whole blob to its Location with ?digest=."""
    start = upload_start_url(session.endpoint, session.repo)
    what = f"POST {_path(start)} (upload of {blob.short})"
    started = session.check(session.request("POST", start, body=b""), {202}, what)
    try:
        target = upload_finish_url(started.header("location") or "", start, blob.digest)
    except InvalidReference as err:
        raise PushError(f"{session.repo}: {what}: {err}") from None
    headers = {"Content-Type": "application/octet-stream"}
    done = session.request("PUT", target, headers=headers, body=blob)
    what = f"PUT {_path(target)} (blob {blob.short})"
    if done.status == 404:  # the session is gone (e.g. a resent PUT): start over
        raise TransientError(f"{what}: upload session unknown: {done.error_text()}")
    session.check(done, {200, 201, 204}, what)
    remote = done.header("docker-content-digest")
    if remote and remote != blob.digest:
        raise PushError(
            f"{session.repo}: the registry stored blob {blob.digest} under digest {remote}"
        )


def put_manifest(session: Session, image: Image, tag: str) -> str:
    """PUT the manifest's exact bytes under `tag`; returns the digest, checked against
    the one the registry computed."""
    url = manifest_url(session.endpoint, session.repo, tag)
    response = session.request(
        "PUT", url, headers={"Content-Type": image.media_type}, body=image.manifest
    )
    session.check(response, {200, 201, 202}, f"PUT {_path(url)}")
    remote = response.header("docker-content-digest")
    if remote and remote != image.manifest_digest:
        raise PushError(
            f"{session.repo}: the registry computed manifest digest {remote} for tag {tag}, "
            f"ours is {image.manifest_digest}"
        )
    return image.manifest_digest


def push_image(
    session: Session,
    image: Image,
    tags: Sequence[str],
    policy: RetryPolicy,
    log: Log,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Blobs the registry lacks, then the manifest under each tag. Returns its digest."""
    retry = functools.partial(with_retries, policy=policy, log=log, sleep=sleep)
    blobs = image.blobs
    log(
        f"pushing {image.layout} to {session.repo}: {len(blobs)} blobs, "
        f"{_megabytes(image.total_size)} MB"
    )
    try:
        retry(f"{session.repo}: API check", functools.partial(check_api, session))
        for number, blob in enumerate(blobs, 1):
            started = time.monotonic()
            outcome = retry(
                f"{session.repo}: blob {blob.short}", functools.partial(_push_blob, session, blob)
            )
            seconds = time.monotonic() - started
            if outcome == "uploaded":
                outcome = f"uploaded in {seconds:.1f} s"
            log(f"  [{number}/{len(blobs)}] {blob.short} {_megabytes(blob.size):>9} MB  {outcome}")
        for tag in tags:
            retry(
                f"{session.repo}: manifest {tag}",
                functools.partial(put_manifest, session, image, tag),
            )
    except PermanentError as err:
        raise PushError(f"{session.repo}: {err}") from None
    return image.manifest_digest


def _push_blob(session: Session, blob: Blob) -> str:
    if blob_exists(session, blob):
        return "exists, skipped"
    upload_blob(session, blob)
    return "uploaded"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.2f}"
