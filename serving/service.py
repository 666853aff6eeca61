"""The BentoML 1.4 service: recommendations with explanations over HTTP.

A FastAPI app mounted on a ``@bentoml.service`` gives typed pydantic bodies, 422s naming the bad
field, and routes that BentoML merges into its OpenAPI page. All model work lives in
``serving.engine`` (built once per model); handlers only validate, look up and shape JSON.
Start-up never fails for want of a model: ``/readyz`` and every API then answer 503 with a
generic reason (details in the server log), and ``POST /admin/reload`` loads the champion once
there is one. Start-up does fail, with one line and status 2, without a pseudonymisation key or
when asked to listen on a non-loopback address without an API token (``serving.access``).
During a rollout ``/recommend`` goes through ``serving.rollout`` (shadow or canary beside the
stable model); every route counts its answers in the shop metrics (``serving.metrics``). Every
answer carries a request id that ``/feedback`` joins its outcome to (``serving.attribution``),
counted once, for the canary's read-out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bentoml
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from contracts.bento_store import MODEL_ARGUMENT
from contracts.i18n import Locales, localise
from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings, get_settings
from contracts.shopper_store import LIVE
from contracts.tables import POSITIVE_EVENTS
from contracts.traffic import PART_GLOB, traffic_folder
from models.queries import Filters
from serving import metrics, schemas
from serving.access import DEFAULT_HOST, AccessMiddleware, refuse_unsafe_start, serve_host
from serving.attribution import Answer, Joined, Ledger, Refused, open_outcome_log, rebuild
from serving.engine import Engine, UnknownItem
from serving.feedback import FeedbackInbox, new_event_id
from serving.loading import EngineHolder, NoModel, Unavailable, shopper_store
from serving.request_timeout import disarm_timers_when_answered
from serving.rollout import Rollout
from serving.traffic_log import open_traffic_log
from serving.wording import chosen, explore_page, in_locale

log = logging.getLogger("shoprec.serving")


def _settings() -> Settings:
    """Settings from the environment; a built Bento pins its model by a Bento argument, which
    an explicit ``SHOPREC_MODEL_URI`` still overrides."""
    settings = get_settings()
    pinned = getattr(bentoml.use_arguments(), MODEL_ARGUMENT, None)
    if pinned and not settings.model_uri:
        return settings.with_values(model_uri=pinned)
    return settings


disarm_timers_when_answered()
SETTINGS = _settings()
refuse_unsafe_start(SETTINGS, serve_host())  # exits here: no key, or an open public address
PSEUDONYMISER = Pseudonymiser(SETTINGS.require_pseudonym_key())
FEEDBACK = FeedbackInbox(SETTINGS.inbox)
HOLDER = EngineHolder(SETTINGS)  # one per server process, shared with the access middleware
STORE = shopper_store(SETTINGS)  # the online shopper state (None: off), shared with the engines
TRAFFIC = open_traffic_log(SETTINGS)  # what was served, for the drift report (None: off)
OUTCOMES = open_outcome_log(SETTINGS)  # outcomes joined to answers, for read-outs (None: off)
LEDGER = Ledger(timedelta(minutes=SETTINGS.rollout.attribution_minutes))  # on the event loop
LOCALES = Locales.load(SETTINGS.shop.locale, SETTINGS.shop.currency)  # every catalog, worded once
EXPLORE_PAGE = explore_page(Path(__file__).with_name("explore.html").read_text(encoding="utf-8"),
                            LOCALES)
ERRORS = {404: {"model": schemas.Problem}, 503: {"model": schemas.Problem}}

app = FastAPI(
    title="shoprec",
    version="1",
    description="Explainable shop recommendations. Every answer names the model that gave it.",
)


@app.exception_handler(RequestValidationError)
async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
    """422 naming each bad field. The offending input is echoed only as JSON can carry it:
    FastAPI's own handler fails with a 500 on a ``NaN`` or ``Infinity`` it tries to echo."""
    return JSONResponse({"detail": [_problem(e) for e in err.errors()]}, status_code=422)


def _problem(error: dict) -> dict:
    return {"type": error.get("type"), "loc": [_json_safe(str(p)) for p in error.get("loc", ())],
            "msg": _json_safe(str(error.get("msg", ""))), "input": _json_safe(error.get("input"))}


def _json_safe(value, depth: int = 0):
    """``value`` as JSON can carry it: non-finite floats and lone surrogates as text, and cut
    short when deeply nested or long."""
    if depth > 8:
        return "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_json_safe(str(k)): _json_safe(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value[:50]]
    if isinstance(value, str):
        return value[:200].encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, bool | int | float):
        return value
    return _json_safe(str(value))


@app.exception_handler(UnknownItem)
async def _unknown_item(_: Request, err: UnknownItem) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status_code=404)


@app.exception_handler(Refused)
async def _refused(_: Request, err: Refused) -> JSONResponse:
    """404 for an answer never served; 422 shaped like every validation error, naming the
    field at fault (the answer named is another shopper's, later, or did not show the item)."""
    if err.status != 422:
        return JSONResponse({"detail": str(err)}, status_code=err.status)
    return JSONResponse({"detail": [{"type": "value_error", "loc": ["body", err.field],
                                     "msg": str(err), "input": None}]}, status_code=422)


@app.exception_handler(Unavailable)
async def _unavailable(_: Request, err: Unavailable) -> JSONResponse:
    return JSONResponse({"detail": str(err)}, status_code=503)


def _engine() -> Engine:
    engine = HOLDER.engine  # taken once: a reload during this request does not affect it
    if engine is None:
        raise NoModel(HOLDER.problem or "no model loaded")
    return engine


def _model(engine: Engine) -> dict:
    info = engine.info
    return {"name": info.name, "version": info.version, "run_id": info.run_id}


def _metadata(engine: Engine) -> dict:
    return engine.info.to_json() | {"loaded_at": engine.loaded_at}


def _encoded(schema: type[BaseModel], body: dict) -> Response:
    """``body`` checked against ``schema`` and encoded in one pass of pydantic's compiled core.
    Returning a dict makes FastAPI validate, convert to plain Python and ``json.dumps`` it: 2.3x
    the time for an explained answer (15 kB), measured. The route's ``response_model`` still
    documents the answer."""
    return Response(schema.model_validate(body).model_dump_json(), media_type="application/json")


def _rollout(rollout: Rollout | None) -> dict | None:
    return rollout.to_json() if rollout is not None else None


# Routes are module functions, not methods: BentoML hands a method route its ``self`` through a
# synchronous FastAPI dependency, which costs every request a hop to the thread pool (measured).
@app.post("/recommend", response_model=schemas.RecommendResponse, responses=ERRORS)
async def recommend(body: schemas.RecommendRequest, request: Request) -> Response:
    start = time.perf_counter()
    choice = chosen(LOCALES, request, body.locale)
    filters = Filters(body.filters.category, body.filters.max_price)
    shopper = body.pseudonym if body.pseudonym is not None else body.user_id
    request_id, served = f"r-{uuid.uuid4().hex}", None
    rollout = HOLDER.rollout  # taken once, like the engine
    if rollout is None:
        engine = _engine()
        page = await engine.recommend(shopper, body.k, body.explain, body.exclude_purchased,
                                      filters, pseudonymised=body.pseudonym is not None)
    else:  # routed by pseudonym, so a shopper keeps the model they got
        user = body.pseudonym or PSEUDONYMISER.one(shopper)
        served = await rollout.recommend(user, body.k, body.explain, body.exclude_purchased,
                                         filters, request_id)
        page, engine = served.page, served.engine
        rollout.shown(user, served)
    version, credited = engine.info.version, served and served.credited
    in_readout = served is not None and served.in_readout and rollout.readout is not None
    LEDGER.served(Answer(request_id, page.pseudonym, datetime.now(UTC), version,
                         tuple(i["item_id"] for i in page.items),
                         tuple(i.get("price") for i in page.items), credited,
                         rollout.readout if in_readout else None))
    if TRAFFIC is not None:
        TRAFFIC.record(page.pseudonym, version, page.items, page.fallback, request_id,
                       in_readout, credited)
    metrics.shown(credited or (version,))
    metrics.answered("recommend", version, page.fallback)
    metrics.recommended(version, body.explain, time.perf_counter() - start)
    return _encoded(schemas.RecommendResponse, {
        "request_id": request_id, "user_id": shopper, "items": localise(page.items, choice.words),
        "fallback": page.fallback, "model": _model(engine), **in_locale(choice)})


@app.post("/explain", response_model=schemas.ExplainResponse, responses=ERRORS)
async def explain(body: schemas.ExplainRequest, request: Request) -> dict:
    engine, choice = _engine(), chosen(LOCALES, request, body.locale)
    scored, fallback = await engine.explain(body.user_id, body.item_id)
    metrics.answered("explain", engine.info.version, fallback)
    [scored] = localise([scored], choice.words)
    return {"user_id": body.user_id, "item_id": body.item_id, **scored,
            "fallback": fallback, "model": _model(engine), **in_locale(choice)}


@app.post("/similar_items", response_model=schemas.SimilarResponse, responses=ERRORS)
def similar_items(body: schemas.SimilarRequest, request: Request) -> dict:
    engine, choice = _engine(), chosen(LOCALES, request, body.locale)
    items = localise(engine.similar(body.item_id, body.k), choice.words)
    metrics.answered("similar_items", engine.info.version, None)
    return {"item_id": body.item_id, "items": items, "model": _model(engine),
            **in_locale(choice)}


@app.post("/history", response_model=schemas.HistoryResponse, responses=ERRORS)
def history(body: schemas.HistoryRequest, request: Request) -> dict:
    engine, choice = _engine(), chosen(LOCALES, request, body.locale)
    items = localise(engine.history(body.user_id, body.k), choice.words)
    metrics.answered("history", engine.info.version, None)
    return {"user_id": body.user_id, "items": items, "model": _model(engine),
            **in_locale(choice)}


@app.get("/explore", response_class=HTMLResponse, include_in_schema=False)
def explore() -> HTMLResponse:
    """A page showing what a shopper would see and why, in their language (every catalog's
    words are in it); its data comes from the APIs above, with the same token."""
    return HTMLResponse(EXPLORE_PAGE)


@app.post("/feedback", response_model=schemas.FeedbackResponse, responses=ERRORS)
async def feedback(body: schemas.FeedbackRequest) -> dict:
    """Works without a model too (ingestion validates the item); with one, unknown items
    are refused at once. The event joins the current hour's file in the inbox and, when it
    follows a served answer (named by ``request_id``, or inferred), that answer's outcomes,
    once (``serving.attribution``); a retry with the same request id is not stored again."""
    if HOLDER.engine is not None:
        HOLDER.engine.index_of(body.item_id)
    max_age = timedelta(hours=SETTINGS.feedback_max_age_hours)
    if body.timestamp is not None and body.timestamp < datetime.now(UTC) - max_age:
        raise RequestValidationError([{
            "type": "value_error", "loc": ("body", "timestamp"), "input": None,
            "msg": f"timestamp is older than {SETTINGS.feedback_max_age_hours:g} hours "
                   "(SHOPREC_FEEDBACK_MAX_AGE_HOURS)"}])
    user, moment = PSEUDONYMISER.one(body.user_id), body.timestamp or datetime.now(UTC)
    joined = LEDGER.join(user, body.item_id, body.event_type, moment, body.request_id)
    if joined is not None and not joined.counted and body.request_id is not None:
        feedback_id, batch = joined.first  # a retried post: stored and counted already
        metrics.answered("feedback", joined.answer.version, None)
        return {"feedback_id": feedback_id, "batch": batch, "request_id": body.request_id,
                "counted": False}
    counting = joined is not None and joined.counted
    event_id = new_event_id()
    if counting:  # before the await: a concurrent replay finds it counted
        LEDGER.count(joined, event_id, "")
    try:
        event_id, batch = await asyncio.to_thread(
            FEEDBACK.append, user, body.item_id, body.event_type, body.quantity,
            body.unit_price, moment, event_id)
    except BaseException:
        if counting:
            LEDGER.uncount(joined)
        raise
    if counting:
        _counted(joined, user, body, moment, event_id, batch)
    if STORE is not None and body.event_type in POSITIVE_EVENTS:  # live for the next answer
        try:
            await asyncio.to_thread(STORE.apply, LIVE, pd.DataFrame({
                "user_id": [user], "event_id": [event_id], "item_id": [body.item_id],
                "event_type": [body.event_type], "timestamp": [moment]}))
        except Exception as err:  # it is in the inbox: the next ingest puts it in the store
            log.warning("shopper store not updated by feedback %s (%s: %s)", event_id,
                        type(err).__name__, err)
        for served in (HOLDER.engine, HOLDER.rollout and HOLDER.rollout.candidate):
            if served is not None and served.shoppers is not None:
                served.shoppers.forget(user)
    engine = HOLDER.engine
    metrics.answered("feedback", engine.info.version if engine is not None else None, None)
    return {"feedback_id": event_id, "batch": batch,
            "request_id": joined.answer.request_id if joined is not None else None,
            "counted": counting}


def _counted(joined: Joined, user: str, body: schemas.FeedbackRequest, moment: datetime,
             event_id: str, batch: str) -> None:
    """An outcome counted for its answer: in the ledger, the outcome log, the metrics and,
    when the answer is in the running canary's read-out, there (which may roll it back)."""
    LEDGER.count(joined, event_id, batch)
    answer, version = joined.answer, joined.answer.credit(joined.item)
    price = body.unit_price if body.unit_price is not None else answer.price(joined.item)
    revenue = body.quantity * price if body.event_type == "purchase" and price is not None \
        else None
    if OUTCOMES is not None:
        OUTCOMES.record(joined, moment, body.quantity, revenue, event_id, batch)
    metrics.outcome(version, body.event_type, revenue)
    rollout = HOLDER.rollout
    if rollout is not None and answer.readout is not None and rollout.readout is answer.readout:
        rollout.outcome(user, version, body.event_type, revenue)


@app.get("/metadata", response_model=schemas.ServiceMetadata, responses=ERRORS)
async def metadata() -> dict:
    """The stable model, any rollout with each model's counts, the latest rollbacks. On the
    event loop, where the rollout counts are kept, so it reads them whole."""
    state = None
    if STORE is not None:
        try:
            fresh = await asyncio.to_thread(STORE.freshness)
            state = {"store": type(STORE).__name__.removesuffix("ShopperStore").lower()
                     } | fresh.to_json()
        except Exception as err:  # the model's metadata still answers; the log says why
            log.warning("shopper store unreadable (%s: %s)", type(err).__name__, err)
    if HOLDER.rollout is not None:  # a canary the read-out now fails is rolled back first
        HOLDER.rollout.judge_outcomes()
    return _metadata(_engine()) | {"shopper_state": state, "rollout": _rollout(HOLDER.rollout),
                                   "rollbacks": list(HOLDER.rollbacks)}


@app.post("/admin/reload", response_model=schemas.ReloadResponse, responses=ERRORS)
def reload() -> dict:
    """Load what the registry says should serve (the champion; during a rollout, the stable
    model beside the champion on trial) aside, then swap; requests in flight finish on the
    old. Unchanged models are not loaded again."""
    before = HOLDER.rollout
    previous, current = HOLDER.reload()
    rollout = HOLDER.rollout
    return {"changed": previous is not current or rollout is not before,
            "previous": _metadata(previous) if previous is not None else None,
            "current": _metadata(current), "rollout": _rollout(rollout)}


def _refresh_catalogue() -> None:
    """Products added to the catalogue after training become recommendable within
    ``shopper_store_refresh_seconds`` of their batch, with no retraining."""
    while True:
        time.sleep(SETTINGS.shopper_store_refresh_seconds)
        try:
            HOLDER.refresh_catalogue()
        except Exception:  # keep serving what is loaded; try again next time
            log.exception("could not add the new catalogue items")


# A built Bento's runtime: Debian with the Python building it; its packages come pinned from
# uv.lock (packaging hands their requirements file to it), not re-resolved when it is built.
IMAGE = bentoml.images.Image(lock_python_packages=False)


# One worker: on two cores a second TF process only competes with the first. No per-request
# access log line: at hundreds of requests a second it costs more CPU than the model call.
# Loopback unless told otherwise, also for `bentoml serve` of a built Bento (BentoML's own
# default is every interface).
@bentoml.service(name="shoprec", workers=1, traffic={"timeout": 60}, image=IMAGE,
                 logging={"access": {"enabled": False}}, http={"host": DEFAULT_HOST},
                 tracing={} if SETTINGS.serve.tracing else {"excluded_urls": ["/"]})
@bentoml.asgi_app(app, path="/")
class Shoprec:
    """Loads the served model once at start-up (if there is one) and answers from memory."""

    def __init__(self) -> None:
        if STORE is not None:
            threading.Thread(target=_refresh_catalogue, name="shoprec-catalogue",
                             daemon=True).start()
        try:
            HOLDER.reload()
        except NoModel as err:
            log.warning("starting without a model: %s; POST /admin/reload once there is one", err)
        except Unavailable as err:  # registry down, broken artefact: stay up, say why
            HOLDER.problem = str(err)
        _restore_ledger()


def _restore_ledger() -> None:
    """After a restart: the answers outcomes may still join, what was counted, and the running
    canary's read-out, from the traffic and outcome logs."""
    if TRAFFIC is None or OUTCOMES is None:
        return
    rollout = HOLDER.rollout
    try:
        rebuild(LEDGER, traffic_folder(SETTINGS), OUTCOMES.folder, PART_GLOB,
                rollout and rollout.readout, rollout and rollout.started_at)
    except Exception:  # unreadable logs cost the read-out's past, never the endpoint
        log.exception("could not restore the attribution ledger from the logs")


Shoprec.add_asgi_middleware(
    AccessMiddleware,
    token=SETTINGS.api_token.get_secret_value() if SETTINGS.api_token else None,
    not_ready=lambda: HOLDER.problem,
)
