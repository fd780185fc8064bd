"""`tuneshift serve`'s /v1/completions in vLLM's shapes, batching, and its guards (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from conftest import one_error_line, run_cli
from serving import free_port, serving

LIMIT = 30000
KEY = "serve-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tiny):
    with serving("--model", str(tiny["teacher_base"]), "--name", "base", "--adapter", f"ft={tiny['adapter']}",
                 "--max-request-bytes", str(LIMIT), "--batch-wait-ms", "50") as running:
        yield running


@pytest.fixture(scope="module")
def scorer(tiny):
    """The in-process scorer and the tokenizer it formats with: the reference for the server's numbers."""
    from tuneshift.kinds import Context, ModelSpec
    from tuneshift_hf.formatting import encode_pair
    from tuneshift_hf.loading import load_tokenizer
    from tuneshift_hf.scoring import HFScorer

    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    context = Context(teacher=spec, target=None, seed=0, work_dir=".")
    tok = load_tokenizer(spec.base)
    return {"scorer": HFScorer(HFScorer.Options(token_logprobs=True), context), "spec": spec,
            "encode": lambda p, r: encode_pair(tok, p, r), "tokenizer": tok}


def complete(server: dict, **body: Any) -> httpx.Response:
    return httpx.post(f"{server['url']}/v1/completions", json=body, timeout=60)


PAIRS = [("What is the capital of Zorbia?", "The capital of Zorbia is Velmora."),
         ("Who wrote the Book of Sand?", "Nobody knows who wrote it."),
         ("Hi", "Hello! How can I help you today with anything at all?")]


def test_prompt_logprobs_of_token_ids_match_the_in_process_scorer(server, scorer):
    reference = scorer["scorer"].score(scorer["spec"], PAIRS)
    encoded = [scorer["encode"](p, r) for p, r in PAIRS]
    for served, key in (("ft", "token_logprobs_finetuned"), ("base", "token_logprobs_base")):
        reply = complete(server, model=served, prompt=[p + r for p, r in encoded], max_tokens=1, temperature=0,
                         prompt_logprobs=2).json()
        assert [c["index"] for c in reply["choices"]] == [0, 1, 2]
        for choice, (prompt, response), ref in zip(reply["choices"], encoded, reference):
            entries = choice["prompt_logprobs"]
            ids = prompt + response
            assert len(entries) == len(ids) and entries[0] is None  # nothing predicts the first token
            assert all(str(t) in e and len(e) <= 3 for e, t in zip(entries[1:], ids[1:]))  # actual + top-2
            got = [entries[j][str(ids[j])]["logprob"] for j in range(len(prompt), len(ids))]
            assert max(abs(a - b) for a, b in zip(got, ref.extra[key])) < 1e-4
            ranks = [entries[j][str(ids[j])]["rank"] for j in range(1, len(ids))]
            assert all(isinstance(r, int) and r >= 1 for r in ranks)


def test_echo_with_logprobs_in_the_openai_shape(server, scorer):
    prompt, response = PAIRS[0]
    text = scorer["tokenizer"].decode(sum(scorer["encode"](prompt, response), []))
    reply = complete(server, model="ft", prompt=text, max_tokens=2, temperature=0, echo=True, logprobs=1).json()
    choice = reply["choices"][0]
    assert choice["text"].startswith(text)
    lp = choice["logprobs"]
    n_prompt = reply["usage"]["prompt_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"])
    assert len(lp["tokens"]) == n_prompt + reply["usage"]["completion_tokens"]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(v <= 0 for v in lp["token_logprobs"][1:])
    assert lp["text_offset"] == sorted(lp["text_offset"])
    # a prompt given as text scores as the same prompt given as token ids
    ids = scorer["tokenizer"](text)["input_ids"]
    by_ids = complete(server, model="ft", prompt=ids, max_tokens=2, temperature=0, echo=True, logprobs=1).json()
    assert by_ids["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(lp["token_logprobs"], abs=1e-5)


def test_adapter_by_name_and_sampling_are_reproducible(server):
    body = {"prompt": "What is the capital of Zorbia?", "max_tokens": 8}
    ft = complete(server, model="ft", temperature=0, **body).json()["choices"][0]["text"]
    base = complete(server, model="base", temperature=0, **body).json()["choices"][0]["text"]
    assert ft != base
    sampled = [complete(server, model="ft", temperature=1.0, seed=7, n=2, **body).json() for _ in range(2)]
    assert [c["text"] for c in sampled[0]["choices"]] == [c["text"] for c in sampled[1]["choices"]]
    assert complete(server, model="nope", **body).status_code == 404


def test_the_text_ends_at_the_earliest_stop_string_whatever_its_place_in_the_list(server):
    body = {"model": "ft", "prompt": "What is the capital of Zorbia?", "max_tokens": 24, "temperature": 0}
    text = complete(server, **body).json()["choices"][0]["text"]
    firsts = {text[i:i + 2]: text.index(text[i:i + 2]) for i in range(len(text) - 1) if text[i:i + 2].strip()}
    early, late = min(firsts, key=firsts.get), max(firsts, key=firsts.get)
    assert firsts[early] < firsts[late], text  # two stop strings, the later one listed first
    choice = complete(server, stop=[late, "never in the text", early], **body).json()["choices"][0]
    assert (choice["text"], choice["finish_reason"]) == (text[:firsts[early]], "stop")
    unstopped = complete(server, stop=["never in the text"], **body).json()["choices"][0]
    assert unstopped["text"] == text


def test_bad_requests_are_400_with_a_message(server):
    for body, fragment in (({"model": "ft", "prompt": "x", "max_tokens": -1}, "max_tokens"),
                           ({"model": "ft", "prompt": [10**9], "max_tokens": 1}, "token ids"),
                           ({"model": "ft", "prompt": [], "max_tokens": 1}, "prompt"),
                           ({"model": "ft", "prompt": "x", "logprobs": 99}, "logprobs"),
                           ({"model": "ft", "prompt": "x", "stream": True}, "stream")):
        response = complete(server, **body)
        assert response.status_code == 400, body
        assert fragment in response.json()["error"]["message"]


def test_concurrent_requests_share_batches(server, scorer):
    encoded = [scorer["encode"](p, r) for p, r in PAIRS]
    before = httpx.get(f"{server['url']}/health").json()

    async def burst() -> list[dict]:
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [client.post(f"{server['url']}/v1/completions",
                                 json={"model": ("ft", "base")[i % 2], "prompt": sum(encoded[i % 3], []),
                                       "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0})
                     for i in range(12)]
            return [r.json() for r in await asyncio.gather(*calls)]

    replies = asyncio.run(burst())
    after = httpx.get(f"{server['url']}/health").json()
    assert after["requests"] - before["requests"] == 12
    assert after["batches"] - before["batches"] < 12  # merged: fewer forward passes than requests
    # a row's numbers do not depend on what it was batched with
    alone = complete(server, model="ft", prompt=sum(encoded[0], []), max_tokens=1, temperature=0,
                     prompt_logprobs=0).json()
    first = [next(iter(e.values()))["logprob"] for e in replies[0]["choices"][0]["prompt_logprobs"][1:]]
    again = [next(iter(e.values()))["logprob"] for e in alone["choices"][0]["prompt_logprobs"][1:]]
    assert max(abs(a - b) for a, b in zip(first, again)) < 1e-4


def test_oversized_bodies_are_refused_declared_or_chunked(server):
    url = f"{server['url']}/v1/completions"
    big = {"model": "ft", "prompt": "x" * (LIMIT + 10), "max_tokens": 1}
    assert httpx.post(url, json=big).status_code == 413

    def chunks():  # no content-length: the server must count as it reads
        payload = ('{"model": "ft", "max_tokens": 1, "prompt": "' + "y" * (LIMIT + 10) + '"}').encode()
        for i in range(0, len(payload), 4096):
            yield payload[i:i + 4096]

    response = httpx.post(url, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "bytes" in response.json()["error"]["message"]
    assert httpx.get(f"{server['url']}/health").status_code == 200  # still serving


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outward interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_binds_loopback_by_default(server):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{address}:{server['port']}/health", timeout=5)
    assert math.isfinite(httpx.get(f"{server['url']}/health").json()["requests"])


@pytest.mark.parametrize("port", ["70000", "-1", "0"])
def test_an_invalid_port_is_one_error_line(tiny, port):
    result = run_cli("serve", "--model", str(tiny["teacher_base"]), "--port", port, timeout=60)
    assert one_error_line(result) == f"error: --port {port}: expected a port number from 1 to 65535"


def test_a_busy_port_is_one_error_line(tiny):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--model", str(tiny["teacher_base"]), "--port", str(port), timeout=60)
    assert one_error_line(result) == f"error: port {port} on 127.0.0.1 is in use"


def test_an_adapter_of_another_base_is_refused_with_the_whole_reason(tiny):
    result = run_cli("serve", "--model", str(tiny["target"]), "--adapter", f"ft={tiny['adapter']}",
                     "--port", str(free_port()), timeout=120)
    line = one_error_line(result)
    assert line.startswith(f"error: adapter {tiny['adapter']}: does not fit base {tiny['target']} ("), line
    assert "the adapter expects" in line and line.endswith("); was it trained on another base model?"), line


def test_out_of_range_seeds_are_400_with_a_json_error(server):
    for seed in (10**23, 2**63, -1):
        response = complete(server, model="ft", prompt="Hi", max_tokens=1, temperature=1.0, seed=seed)
        assert response.status_code == 400, seed
        assert response.json()["error"]["message"].startswith("seed: "), response.text
    chat = httpx.post(f"{server['url']}/v1/chat/completions", timeout=60,
                      json={"model": "ft", "messages": [{"role": "user", "content": "Hi"}], "seed": 10**23})
    assert chat.status_code == 400 and chat.json()["error"]["message"].startswith("seed: ")
    largest = complete(server, model="ft", prompt="Hi", max_tokens=1, temperature=1.0, seed=2**63 - 1, n=2)
    assert largest.status_code == 200, largest.text


def test_unknown_routes_and_methods_are_json_errors(server):
    missing = httpx.get(f"{server['url']}/v1/nope")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Not Found"
    wrong = httpx.get(f"{server['url']}/v1/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"


@pytest.fixture(scope="module")
def keyed(tiny):
    """`tuneshift serve`'s app in this process with an API key, on a real loopback port, plus one
    route that fails the way a model can (a RuntimeError), to reach the real error handlers."""
    import uvicorn
    from tuneshift_serve.server import ServeConfig, create_app

    guard = create_app(ServeConfig(str(tiny["teacher_base"]), "base", {}, api_key=KEY))

    @guard.app.get("/v1/fail")
    def fail() -> None:
        raise RuntimeError("the model fell over\nat some depth")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(guard, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_bearer_scheme_is_case_insensitive_and_the_key_is_still_checked(keyed):
    for header in (f"Bearer {KEY}", f"bearer {KEY}", f"BEARER {KEY}", f"bEaReR  {KEY}"):
        assert httpx.get(f"{keyed}/v1/models", headers={"Authorization": header}).status_code == 200, header
    for headers in ({}, {"Authorization": f"Bearer {KEY}x"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": KEY}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer{KEY}"}):
        response = httpx.get(f"{keyed}/v1/models", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["type"] == "authentication_error"


def test_an_unexpected_exception_is_a_json_500_in_the_openai_shape(keyed):
    response = httpx.get(f"{keyed}/v1/fail", headers=AUTH)
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"message": "RuntimeError: the model fell over", "type": "server_error",
                                         "code": 500}}
    assert httpx.get(f"{keyed}/health", headers=AUTH).status_code == 200  # still serving
