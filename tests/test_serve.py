"""`tuneshift serve`'s /v1/completions in vLLM's shapes, batching, and its guards (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import math
import socket
from typing import Any

import httpx
import pytest

from serving import serving

LIMIT = 30000


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
