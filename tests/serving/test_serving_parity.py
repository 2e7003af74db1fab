"""`RemotePolicy` keeps the local `Policy`'s public surface (the serving promise: "the same interface and result
types"). Every public attribute, property and method of `Policy`, and `with` (`PROTOCOL`), is walked: a remote
counterpart with the same signature, defaults and return type, and for attributes the same value as the policy the
server runs; or a name in `LOCAL_ONLY`, which raises `LocalOnlyError` saying why (docs/serving.md, "The client"). A name
added to `Policy` fails here until the client has it or the list says why not; bad input is refused by both with the
same error."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from serving_standins import StandInPolicy

from worldpolicy.models import checkpoint_name
from worldpolicy.policy import Policy, PolicyRequest
from worldpolicy.serving import LocalOnlyError, PolicyServer, RemotePolicy, ServerConfig, ServerThread
from worldpolicy.sim.policies import chunk_size, wrap_policy

# The documented exceptions (docs/serving.md): what a remote policy cannot offer, each raising LocalOnlyError.
LOCAL_ONLY = {
    "engine": "the model runs on the server",
    "sampling": "a SamplingConfig is the server engine's; its defaults are metadata()['sampling']",
    "from_pretrained": "a checkpoint loads where it is served",
    "check_pretrained": "the server checks its checkpoint before its port opens",
    "single_view_said": "the server says its own warnings about the frames it receives",
    "imagined_frame_said": "the server judges every frame it receives, imagined or not",
    "untrained_modes": "the server reads its checkpoint's training record and warns of an untrained mode itself",
}

# Dunder methods callers rely on: `with policy:` closes a local policy (its model released) as it closes a remote one.
PROTOCOL = ("__enter__", "__exit__")

# Attributes: how the remote value compares with the served local policy's (the server names its checkpoint by its
# portable name, and announces the embodiment's full spec).
SAME_VALUE = {
    "embodiment": lambda local: local.embodiment,
    "chunk_size": lambda local: local.chunk_size,
    "resolution_tier": lambda local: local.resolution_tier,
    "center_crop": lambda local: local.center_crop,
    "source": lambda local: checkpoint_name(local.source),
}


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    import worldpolicy
    from worldpolicy.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp("parity") / "tiny")
    return worldpolicy.load_policy(checkpoint, embodiment="droid/relative_pose", device="cpu", chunk_size=8,
                                   resolution_tier=256, steps=2)


def _public_names(policy: Policy) -> dict[str, bool]:
    """Each public name of a loaded Policy → whether it is a method (class members, the attributes `__init__`
    sets, and `PROTOCOL`)."""
    names = {name: callable(getattr(Policy, name)) for name in dir(Policy) if not name.startswith("_")}
    names.update({name: False for name in vars(policy) if not name.startswith("_")})
    names.update({name: True for name in PROTOCOL})
    return names


def _comparable(sig: inspect.Signature) -> list[tuple[Any, ...]]:
    """A signature's parameters as callers see them: name, kind and default; `**kwargs` by kind alone."""
    return [(p.kind, None if p.kind is p.VAR_KEYWORD else p.name, p.default) for p in sig.parameters.values()]


def test_remote_policy_has_every_public_name_of_the_local_policy(tiny_policy):
    names = _public_names(tiny_policy)
    assert set(LOCAL_ONLY) <= set(names), f"stale exceptions: {set(LOCAL_ONLY) - set(names)}"
    for name, is_method in names.items():
        if name in LOCAL_ONLY:
            continue
        assert hasattr(RemotePolicy, name), f"RemotePolicy lacks Policy.{name} (add it, or to LOCAL_ONLY and docs)"
        if not is_method:
            assert name in SAME_VALUE, f"Policy.{name}: say how RemotePolicy.{name} compares (SAME_VALUE)"
            continue
        local, remote = inspect.signature(getattr(Policy, name)), inspect.signature(getattr(RemotePolicy, name))
        # the remote may add keyword-only settings of its own (act_batch's connections, every call's timeout_s), never
        # a required one
        names = {p.name for p in local.parameters.values()}
        extra = [p for p in remote.parameters.values() if p.name not in names and p.kind is not p.VAR_KEYWORD]
        kept = remote.replace(parameters=[p for p in remote.parameters.values() if p not in extra])
        assert _comparable(kept) == _comparable(local), f"{name}: {remote} vs {local}"
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra), f"{name}: {remote} vs {local}"
        assert remote.return_annotation == local.return_annotation, name


def test_remote_attributes_are_the_served_policys(tiny_policy):
    server = PolicyServer(loader=lambda: tiny_policy, config=ServerConfig(host="127.0.0.1", port=0))
    with ServerThread(server) as t:
        for name, expected in SAME_VALUE.items():
            with RemotePolicy(t.url, connect_now=False) as fresh:  # each connects for the metadata frame
                assert getattr(fresh, name) == expected(tiny_policy), name
        with RemotePolicy(t.url) as remote:
            assert (remote.chunk_size, remote.resolution_tier, remote.source) == (8, 256, "tiny")
            assert remote.metadata()["sampling"]["steps"] == tiny_policy.sampling.steps == 2
            # the sim wrapper takes the chunk from either the same way
            assert chunk_size(wrap_policy(remote)) == chunk_size(wrap_policy(tiny_policy)) == 8


def test_local_only_names_raise_saying_why():
    remote = RemotePolicy("ws://127.0.0.1:9", connect_now=False)  # nothing is sent: no server needed
    calls = {
        "engine": lambda: remote.engine,
        "sampling": lambda: remote.sampling,
        "from_pretrained": lambda: RemotePolicy.from_pretrained("shipped"),
        "check_pretrained": lambda: RemotePolicy.check_pretrained("shipped"),
        "single_view_said": lambda: remote.single_view_said(180, 320),
        "imagined_frame_said": lambda: remote.imagined_frame_said(np.zeros((8, 8, 3), np.uint8)),
        "untrained_modes": lambda: remote.untrained_modes,
    }
    assert set(calls) == set(LOCAL_ONLY)
    for name, call in calls.items():  # each names itself and where the work happens instead
        with pytest.raises(LocalOnlyError, match=name) as error:
            call()
        assert "serve" in str(error.value), name
    # an AttributeError: code that probes for the attribute takes a remote policy as lacking it
    assert getattr(remote, "engine", None) is None and not hasattr(remote, "sampling")


BAD_INPUT = {
    "unknown option": lambda p, image: p.act(image, "a", sed=3),
    "option the method sets": lambda p, image: p.act(image, "a", mode="inverse_dynamics"),
    "imagine's mode as an option": lambda p, image: p.imagine(image, np.zeros((8, 10)), "a", mode="policy"),
    "bad seed": lambda p, image: p.act(image, "a", seed=-1),
    "bad decode_video": lambda p, image: p.act(image, "a", decode_video="no"),
    "bad actions_space": lambda p, image: p.act(image, "a", actions_space="joint"),
    "empty prompt": lambda p, image: p.act(image, ""),
    "bad mode": lambda p, image: p.act_batch([PolicyRequest(image, "a", mode="dream")]),
    "a lone request": lambda p, image: p.act_batch(PolicyRequest(image, "a")),
    "progress not callable": lambda p, image: p.act_batch([PolicyRequest(image, "a")], progress=3),
    "actions in policy mode": lambda p, image: p.act_batch([PolicyRequest(image, "a", actions=np.zeros((8, 10)))]),
    "action_prefix to imagine": lambda p, image: p.imagine(image, np.zeros((8, 10)), "a", action_prefix=[[0.0] * 10]),
    "action_prefix in another mode": lambda p, image: p.act_batch([PolicyRequest(image, "a", mode="inverse_dynamics",
                                                                                 action_prefix=[[0.0] * 10])]),
    "bad start_frame": lambda p, image: p.infer_actions(image, "a", start_frame=-1),
    "bad whole_clip": lambda p, image: p.infer_actions(image, "a", whole_clip="yes"),
    "bad batch_size": lambda p, image: p.infer_actions(image, "a", whole_clip=True, batch_size=1.5),
    "infer_actions' progress not callable": lambda p, image: p.infer_actions(image, "a", progress=3),
    "infer_actions' unknown option": lambda p, image: p.infer_actions(image, "a", wholeclip=True),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_refused_as_the_local_policy_refuses_it(tiny_policy, case):
    """The same error type and text, and from the client before anything travels (no server listens here)."""
    image = np.zeros((48, 64, 3), np.uint8)
    remote = RemotePolicy("ws://127.0.0.1:9", connect_now=False)
    with pytest.raises(Exception) as local_error:
        BAD_INPUT[case](tiny_policy, image)
    with pytest.raises(Exception) as remote_error:
        BAD_INPUT[case](remote, image)
    assert type(remote_error.value) is type(local_error.value)
    assert str(remote_error.value) == str(local_error.value)


def test_a_state_history_sends_the_row_the_chunk_starts_from(serve):
    """The local Policy takes a state history [T, action_dim] as its current row (the first, for inverse dynamics);
    the client flattened it to T * action_dim values, which the server refused."""
    policy = StandInPolicy(batching=False)  # droid: 8 values
    t = serve(policy)
    history = np.arange(16.0).reshape(2, 8)
    with RemotePolicy(t.url) as remote:
        remote.act({"observation/image": np.zeros((64, 64, 3), np.uint8)}, "a", state=history)
        np.testing.assert_array_equal(policy.options[-1]["state"], history[-1])
        remote.infer_actions(np.zeros((3, 64, 64, 3), np.uint8), "a", state=history)
        np.testing.assert_array_equal(policy.options[-1]["state"], history[0])
