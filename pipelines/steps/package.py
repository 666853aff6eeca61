"""Packaging the champion for BentoML, and talking to the running endpoint.

``package_champion`` copies the MLflow champion (or any model URI; the DAG passes the gated
version, ``package_version``) into the BentoML model store (labelled with its
run, version, data hash and headline metrics) and builds a Bento pinned to it, so ``bentoml serve
shoprec:<version>`` serves exactly that model. The Bento's runtime is the service's
``bentoml.images.Image`` with ``uv.lock``'s pins of every package the service needs
(``locked_requirements``), so ``bentoml containerize`` rebuilds what was tested. The endpoint
helpers let the DAG and ``make demo`` reload the server after a promotion and smoke-test it over
HTTP. No Airflow import here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts import registry
from contracts.bento_store import BENTOML_SCHEME, INFO_KEY, MLFLOW_DIR, MODEL_ARGUMENT
from contracts.model_info import PROBE_USER_TAG, describe
from contracts.pyfunc import pinned
from contracts.settings import PROJECT_ROOT, Settings

SERVICE = "serving.service:Shoprec"
BENTO_INCLUDE = ["serving/**/*.py", "serving/**/*.html", "models/**/*.py", "contracts/**/*.py",
                 "contracts/locales/**/*.mo"]  # the compiled catalogs (contracts.i18n)
TIMEOUT_S = 60.0
# Distributions the served code imports itself (tests/integration/serving/test_package.py checks
# the list): the Bento pins them and everything they need at uv.lock's versions.
SERVING_PACKAGES = ("bentoml", "fastapi", "mlflow", "tensorflow", "tf-keras",
                    "tensorflow-recommenders", "numpy", "pandas", "pyarrow", "scipy", "faiss-cpu",
                    "pydantic", "pydantic-settings", "pyyaml", "click", "prometheus-client",
                    "universal-pathlib", "redis", "babel")


class EndpointUnavailable(RuntimeError):
    """Nothing answers at the endpoint's address."""


@dataclass
class PackageResult:
    model_tag: str
    bento_tag: str
    model_name: str
    version: str
    run_id: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def use_bentoml_store(settings: Settings) -> Path:
    """Point BentoML at the project-local store; must run before BentoML first touches it."""
    home = settings.bentoml_store
    home.mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(home)
    return home


def _in_store(path: str, home: Path) -> None:
    """BentoML reads ``BENTOML_HOME`` once per process: a store item elsewhere means it had
    already been used with another home here."""
    if home.resolve() not in Path(path).resolve().parents:
        raise RuntimeError(f"BentoML already uses another store in this process ({path}), "
                           f"not {home}")


def package_champion(settings: Settings, model_uri: str | None = None) -> PackageResult:
    """Import the champion (or ``model_uri``) into the BentoML store and build its Bento.

    Tags are derived from the registry version, so packaging the same version again finds both
    and builds nothing.
    """
    import bentoml
    import mlflow


    home = use_bentoml_store(settings)
    registry.configure(settings)
    uri = model_uri or registry.champion_uri(settings.model_name)
    if uri is None:
        raise LookupError(f"{registry.NO_CHAMPION} for {settings.model_name!r}: train one first")
    info = describe(uri)
    version = f"v{info.version}" if info.version else f"run-{(info.run_id or 'unknown')[:12]}"
    model_tag = f"{settings.model_name}:{version}"
    try:
        bentoml.models.get(model_tag)
    except bentoml.exceptions.NotFound:
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(info.uri, dst_path=tmp)
            with bentoml.models.create(model_tag, labels=info.labels(),
                                       metadata={INFO_KEY: info.to_json()}) as model:
                shutil.copytree(local, Path(model.path) / MLFLOW_DIR)
    _in_store(bentoml.models.get(model_tag).path, home)
    bento_tag = f"{settings.model_name}:{version}"
    try:
        bentoml.bentos.get(bento_tag)
    except bentoml.exceptions.NotFound:
        # BentoML takes a requirements file only inside the build context: under the ignored
        # build/, one folder per packaging.
        (PROJECT_ROOT / "build").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="bento-", dir=PROJECT_ROOT / "build") as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(locked_requirements(SERVING_PACKAGES), encoding="utf-8")
            bentoml.bentos.build(  # the service's Image takes the requirements file
                SERVICE, name=settings.model_name, version=version, labels=info.labels(),
                description=f"shoprec endpoint serving {info.name} v{info.version}",
                include=BENTO_INCLUDE, models=[model_tag], build_ctx=str(PROJECT_ROOT),
                args={MODEL_ARGUMENT: f"{BENTOML_SCHEME}{model_tag}"},
                python={"requirements_txt": str(requirements.relative_to(PROJECT_ROOT)),
                        "lock_packages": False},
            )
    return PackageResult(model_tag=model_tag, bento_tag=bento_tag, model_name=info.name,
                         version=str(info.version), run_id=str(info.run_id))


def package_version(settings: Settings, version: str) -> PackageResult:
    """Package registered ``version`` of ``settings.model_name``: the version the gate decided
    on, pinned by number, not whatever the champion alias names when this runs."""
    return package_champion(settings, f"models:/{settings.model_name}/{version}")


def pinned_packages() -> list[str]:
    """``SERVING_PACKAGES`` at the versions installed here."""
    return pinned(SERVING_PACKAGES)


def locked_requirements(names: Iterable[str], project: Path = PROJECT_ROOT) -> str:
    """A requirements file of ``names`` and every distribution they need, pinned as ``uv.lock``
    holds them (``uv export``: its platform markers included, no re-resolution, nothing
    fetched); the rest of the project (Airflow, Great Expectations...) left out."""
    uv = [found] if (found := shutil.which("uv")) else [sys.executable, "-m", "uv"]
    try:
        exported = subprocess.run(
            [*uv, "export", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project",
             "--no-header", "--no-annotate", "--project", str(project)],
            capture_output=True, text=True, check=True, timeout=120).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or err
        raise RuntimeError(f"uv export of {project / 'uv.lock'} failed (uv is needed to "
                           f"package: pip install uv): {detail}") from err
    lock = tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))
    needed = _closure(names, lock["package"])
    lines = [line for line in exported.splitlines()
             if line.strip() and _normalised(line.split("==")[0]) in needed]
    return "\n".join(lines) + "\n"


def _closure(names: Iterable[str], packages: list[dict[str, Any]]) -> set[str]:
    """``names`` and everything they depend on in the lock (extras' dependencies too)."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        by_name.setdefault(package["name"], []).append(package)
    needed, todo = set(), [_normalised(n) for n in names]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for package in by_name.get(name, []):
            for dependency in package.get("dependencies", []):
                todo.append(dependency["name"])
                for extra in dependency.get("extra", []):
                    target = by_name.get(dependency["name"], [{}])
                    todo += [d["name"] for t in target
                             for d in t.get("optional-dependencies", {}).get(extra, [])]
    return needed


def _normalised(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def endpoint_url(settings: Settings) -> str:
    host = settings.serve.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{settings.serve.port}"


def reload_endpoint(settings: Settings) -> dict[str, Any]:
    """Ask the running endpoint to load the current champion; returns its answer."""
    return _call(settings, "/admin/reload", {})


def endpoint_metadata(settings: Settings) -> dict[str, Any]:
    """The running endpoint's ``GET /metadata``: the model it serves and any rollout."""
    return _call(settings, "/metadata", None)


def smoke_call(settings: Settings, pseudonym: str | None = None) -> dict[str, Any]:
    """One real ``/recommend`` over HTTP for a shopper the served model knows; raises unless the
    items come back from the model (no fallback), explained by integrated gradients, complete.

    The shopper is ``pseudonym``, else the one the served model's training run names
    (``PROBE_USER_TAG``; during a rollout the stable model's, which answers it): an unknown
    shopper would only exercise the popularity fallback.
    """
    if pseudonym is None:
        registry.configure(settings)
        uri = registry.serving_uri(settings.model_name)
        if uri is None:
            raise LookupError(f"{registry.NO_CHAMPION} for {settings.model_name!r}")
        pseudonym = describe(uri).probe_user
        if pseudonym is None:
            raise LookupError(f"the champion's run has no {PROBE_USER_TAG} tag: no known shopper "
                              "to smoke-test with")
    return explained_recommendation(settings, pseudonym)


def explained_recommendation(settings: Settings, pseudonym: str, base_url: str | None = None
                             ) -> dict[str, Any]:
    """``/recommend`` for a shopper the model knows, at the endpoint or at ``base_url``; raises
    unless the items come from the model (no fallback), explained, attributions complete."""
    answer = _call(settings, "/recommend", {"pseudonym": pseudonym, "k": 5}, base_url)
    problems = check_recommendation(answer)
    if answer.get("fallback") is not None:
        problems.append(f"a known shopper got the {answer['fallback']} fallback")
    if problems:
        raise AssertionError(f"explained /recommend for {pseudonym} failed: "
                             + "; ".join(problems))
    return answer


def check_recommendation(answer: dict[str, Any], tolerance: float = 0.01) -> list[str]:
    """What is wrong with a ``/recommend`` answer: shape, model identity, and for items the model
    ranked, completeness (attributions add up to score - baseline score, from the answer's own
    numbers). Popularity notes of a cold-start answer carry no attributions to check."""
    problems = [f"missing {key}" for key in ("user_id", "items", "fallback", "model")
                if key not in answer]
    if problems:
        return problems
    if not answer["items"]:
        problems.append("no items")
    if not answer["model"].get("version"):
        problems.append("no model version")
    for item in answer["items"]:
        explanation = item.get("explanation")
        if explanation is None:
            problems.append(f"{item.get('item_id')}: no explanation")
            continue
        if explanation.get("kind") != "integrated_gradients":
            if answer["fallback"] is None:
                problems.append(f"{item['item_id']}: a {explanation.get('kind')} note on an "
                                "item the model ranked")
            continue
        total = sum(a["attribution"] for a in explanation["attributions"])
        gap = item["score"] - explanation["baseline_score"]
        if abs(total - gap) > tolerance * max(abs(gap), 1e-3):
            problems.append(f"{item['item_id']}: attributions sum to {total:.6g}, "
                            f"score - baseline is {gap:.6g}")
    return problems


def _call(settings: Settings, path: str, body: dict[str, Any] | None,
          base_url: str | None = None) -> dict[str, Any]:
    """POST ``body`` to ``path`` (GET when ``body`` is None) and decode the JSON answer."""
    url = (base_url or endpoint_url(settings)) + path
    headers = {"Content-Type": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:500]
        raise RuntimeError(f"{url} answered {err.code}: {detail}") from err
    except (urllib.error.URLError, ConnectionError) as err:
        raise EndpointUnavailable(
            f"nothing answers at {url} ({getattr(err, 'reason', err)}): start it with "
            "`shoprec serve`"
        ) from err
