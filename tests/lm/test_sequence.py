"""A decoder LM traced into the IR (torch.export), spike-coded by the ``spike-code`` pass and
run event by event by snc's sequence simulator; each step checked against an independent
computation: the PyTorch model itself, the pseudo-spiking hooks of snc.lm.pseudo, numpy's
coded projection (snc.ir.spike_coding.project), hand-written attention loops and hand counts."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from examples.spiking_lm.model import ByteLM, Config
from snc.backends import analog
from snc.backends.sequence_ops import causal_attention, gated_linear_attention, gated_linear_attention_recurrent
from snc.backends.sim.sequence import simulate_sequence
from snc.errors import InvalidData, InvalidOption, UnsupportedOperator
from snc.frontends.torch import from_torch
from snc.ir import load, save
from snc.ir import spike_coding as sc
from snc.ir.sequence import Attention, LinearAttention, Norm, SpikeCode
from snc.lm.pseudo import coded
from snc.pipeline import compile as compile_graph

CFG = Config(hidden=32, layers=2, heads=2, mlp=64, window=6, context=16)


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    model = ByteLM(CFG).eval()
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 256, (6, CFG.context))
    labels = rng.integers(0, 256, (6, CFG.context))
    return model, tokens, labels, from_torch(model, tokens[:1])


def test_tracing_gives_the_models_nodes_and_logits(lm):
    model, tokens, _, g = lm
    kinds = [g.nodes[n].kind for n in g.topological_order()]
    # per block q, k, v, o, gate, up, down (+ g in the linear block), and the tied head
    assert kinds.count("Projection") == 7 * 2 + 1 + 1
    assert kinds.count("LinearAttention") == 1 and kinds.count("Attention") == 1
    assert kinds.count("Norm") == 2 * 2 + 1 and kinds.count("Residual") == 4 and kinds.count("Product") == 2
    assert g.nodes["blocks.1.mixer"].window == CFG.window and g.nodes["blocks.0.mixer"].heads == CFG.heads
    head = g.nodes[g.outputs[0]]
    np.testing.assert_array_equal(head.weight, model.embed.weight.detach().numpy())  # tied head: x @ E^T
    with torch.no_grad():
        ref = model(torch.from_numpy(tokens)).numpy()
    out = analog.evaluate(g, tokens)[g.outputs[0]]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_an_operator_outside_the_family_is_refused_with_its_module():
    class Cum(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 8)
            self.head = torch.nn.Linear(8, 10)

        def forward(self, t):
            return self.head(self.embed(t).cumsum(1))

    with pytest.raises(UnsupportedOperator, match="aten.cumsum.*supported: "):
        from_torch(Cum().eval(), torch.zeros(1, 4, dtype=torch.long))


def test_attention_operators_against_loops():
    rng = np.random.default_rng(2)
    q, k, v = (torch.from_numpy(rng.normal(size=(2, 7, 6)).astype(np.float64)) for _ in range(3))
    a = torch.from_numpy(rng.normal(size=(2, 7, 3)))
    np.testing.assert_allclose(gated_linear_attention(q, k, v, a, 3), gated_linear_attention_recurrent(q, k, v, a, 3),
                               rtol=1e-10, atol=1e-12)
    out = causal_attention(q, k, v, heads=3, window=3).numpy()
    qn, kn, vn = q.numpy(), k.numpy(), v.numpy()
    for b in range(2):
        for h in range(3):
            sl = slice(2 * h, 2 * h + 2)
            for t in range(7):
                keys = [s for s in range(7) if s <= t and t - s < 3]
                e = np.array([qn[b, t, sl] @ kn[b, s, sl] / math.sqrt(2) for s in keys])
                p = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
                np.testing.assert_allclose(out[b, t, sl], sum(pi * vn[b, s, sl] for pi, s in zip(p, keys)), rtol=1e-10)


def test_dense_compute_counts_by_hand():
    att = Attention(heads=2, window=4)
    # positions 0..7 see 1, 2, 3, 4, 4, 4, 4, 4 keys: mean 3.25; per key 2 d + 3 heads
    assert att.ops_per_token([(8, 16)] * 3) == round(3.25 * (2 * 16 + 3 * 2))
    gla = LinearAttention(heads=2)  # state 2 x 8 x 8 = 128: 3 per state value + 2 gates + 16 scales
    assert gla.ops_per_token([(8, 16)] * 3 + [(8, 2)]) == 3 * 128 + 2 + 16
    assert Norm(mode="rms").ops_per_token([(8, 16)]) == 48 and SpikeCode().ops_per_token([(8, 16)]) == 32


def test_spike_code_shares_coders_and_calibrates_steps_like_the_pseudo_spiking_hooks(lm):
    model, tokens, _, g = lm
    head = g.outputs[0]
    cg = compile_graph(g, tokens, coding="ternary", k=3.0, exclude=(head,))
    coders = [n for n in cg.topological_order() if isinstance(cg.nodes[n], SpikeCode)]
    assert cg.inputs_of("blocks.0.mixer.q") == cg.inputs_of("blocks.0.mixer.k") == cg.inputs_of("blocks.0.mixer.g")
    assert len(coders) == 4 * 2  # mixer input, attention output, MLP input, gate x up per block
    assert not isinstance(cg.nodes[cg.inputs_of(head)[0]], SpikeCode)
    with torch.no_grad(), coded(model, k=3.0, coding="ternary", projections=model.projections()) as probe:
        model(torch.from_numpy(tokens))
    layers = probe.layers()
    for name, row in layers.items():
        assert cg.nodes[cg.inputs_of(name)[0]].steps == row["steps"], name
    r = simulate_sequence(cg, tokens, mode="values")
    for name, row in layers.items():
        p = r.projections[name].as_dict()
        assert p["entries"] == row["entries"]
        assert p["spikes_per_channel"] == pytest.approx(row["spikes_per_channel"], rel=2e-3), name


@pytest.mark.parametrize("coding", ["ternary", "bitwise", "graded", "bitwise_ternary"])
def test_events_give_the_pseudo_spiking_logits(lm, coding):
    _, tokens, labels, g = lm
    cg = compile_graph(g, tokens[:3], coding=coding, k=3.0)
    ev = simulate_sequence(cg, tokens, labels=labels, mode="events", batch_size=4)
    val = simulate_sequence(cg, tokens, labels=labels, mode="values", batch_size=4)
    np.testing.assert_allclose(ev.logits, val.logits, rtol=1e-6, atol=1e-6)
    plain = analog.evaluate(g, tokens)[g.outputs[0]]
    assert np.abs(plain - val.logits).max() > 1e-3  # the coding changes the logits: this test can fail
    assert ev.perplexity == pytest.approx(val.perplexity, rel=1e-6)
    for name, p in ev.projections.items():
        assert p.events == val.projections[name].events and p.tokens == tokens.size


def test_one_coded_projection_equals_numpys_projection(lm):
    _, tokens, _, g = lm
    cg = compile_graph(g, tokens, coding="bitwise", k=2.5)
    coder = cg.inputs_of("blocks.0.down")[0]
    keep = analog.evaluate(cg, tokens, keep=[cg.inputs_of(coder)[0], "blocks.0.down"])
    x = keep[cg.inputs_of(coder)[0]]
    node = cg.nodes[coder]
    c, vth, _ = node.code(x)
    want = sc.project(cg.nodes["blocks.0.down"].weight, sc.expand(c, "bitwise", node.steps), vth, "bitwise")
    from snc.backends.sim.sequence import _coded_projection

    got = _coded_projection(cg.nodes["blocks.0.down"], c, vth, node.steps, "bitwise").numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_binary_coding_of_signed_activations_is_a_clear_error(lm):
    _, tokens, _, g = lm
    with pytest.raises(InvalidData, match="binary coding needs non-negative"):
        compile_graph(g, tokens, coding="binary")


def test_w8_and_the_artifact(lm, tmp_path):
    _, tokens, labels, g = lm
    cg = compile_graph(g, tokens, coding="graded", w8=True, w8_group=16)
    w = g.nodes["blocks.0.up"].weight
    np.testing.assert_allclose(cg.nodes["blocks.0.up"].weight, sc.w8_dequantized(w, 16), rtol=1e-6)
    assert len(np.unique(np.round(cg.nodes["blocks.0.up"].weight[0, :16] / np.abs(w[0, :16]).max() * 127))) <= 255
    save(cg, tmp_path / "lm.snir")
    back = load(tmp_path / "lm.snir")
    a = simulate_sequence(cg, tokens, labels=labels)
    b = simulate_sequence(back, tokens, labels=labels)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert back.meta["spike_code"]["coding"] == "graded"


def test_passes_refuse_the_wrong_kind_of_graph(lm):
    _, tokens, _, g = lm
    with pytest.raises(InvalidOption, match="does not take a language model"):
        compile_graph(g, tokens, passes=["convert"])
    cnn = from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3)), torch.zeros(1, 4))
    with pytest.raises(InvalidOption, match="does not take a CNN or MLP"):
        compile_graph(cnn, np.zeros((2, 4), np.float32), passes=["spike-code"])


def test_calibrated_steps_clip_what_needs_more(lm):
    _, tokens, _, g = lm
    cg = compile_graph(g, tokens[:1], coding="ternary", k=3.0)
    for n in cg.topological_order():
        if isinstance(cg.nodes[n], SpikeCode):
            cg.replace(n, cg.nodes[n].replace(steps=2))
    r = simulate_sequence(cg, tokens)
    assert all(p.steps == 2 for p in r.projections.values() if p.coder)
    assert any(p.clipped for p in r.projections.values()) and "clipped" in r.notes[0]


def test_per_token_estimate_by_hand(lm):
    from snc.hw import load_profile
    from snc.lm.estimate import estimate_sequence

    _, tokens, labels, g = lm
    cg = compile_graph(g, tokens, coding="ternary", k=3.0)
    doc = estimate_sequence(cg, tokens, labels=labels)
    n_tok = tokens.size
    l2, h45 = load_profile("loihi2"), load_profile("horowitz45")
    for row in doc["layers"]:
        assert row["effective_acs"] == row["events"] * row["n_out"] / n_tok
        assert row["energy_by_hw"]["horowitz45"] == pytest.approx(row["effective_acs"] * float(h45["energy_add_int8"]))
        assert row["energy_by_hw"]["loihi2"] == pytest.approx(
            row["events"] / n_tok * row["n_out"] * float(l2["energy_synop"]) + row["n_out"] * float(l2["energy_neuron_active"]))
        assert row["baseline_energy_j"] == pytest.approx(row["n_in"] * row["n_out"] * float(h45["energy_mac_fp16"]))
    t = doc["totals"]
    for key in ("spikes_per_channel", "silent_share", "share_counts_le_7", "sparsity", "sparsity_step3", "effective_acs",
                "effective_macs", "energy_j", "coding", "k", "steps"):
        assert key in t and all(key in row for row in doc["layers"])
    macs = sum(r["effective_macs"] for r in doc["layers"])
    assert t["projection_macs"] == pytest.approx(macs)
    assert doc["quality"]["perplexity"] == pytest.approx(math.exp(doc["quality"]["loss"]))
    assert doc["footprint"]["loihi2"]["chips"] == 1


def test_graded_payloads_clip_to_their_bits(lm):
    _, tokens, _, g = lm
    cg = compile_graph(g, tokens, coding="graded", k=3.0, payload_bits=8)
    wide = compile_graph(g, tokens, coding="graded", k=3.0)
    cap = sc.max_count_for("graded", 1, 8)
    assert cap == 127
    x = analog.evaluate(wide, tokens, keep=["blocks.0.mul"])["blocks.0.mul"]
    c, _, _ = wide.nodes["blocks.0.mul.code"].code(x)
    c8, _, share = cg.nodes["blocks.0.mul.code"].code(x)
    assert share == np.count_nonzero(np.abs(c) > 127) / c.size and np.abs(c8).max() <= 127
    r = simulate_sequence(cg, tokens)
    assert r.projections["blocks.0.down"].steps == 1


class _GPT(torch.nn.Module):
    """A GPT-style block as people write it: scaled_dot_product_attention on head-split views,
    LayerNorm, GELU, an untied head with a bias."""

    def __init__(self, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.embed = torch.nn.Embedding(40, 16)
        self.ln1, self.ln2 = torch.nn.LayerNorm(16), torch.nn.LayerNorm(16)
        self.qkv = torch.nn.ModuleList(torch.nn.Linear(16, 16) for _ in range(3))
        self.proj, self.fc, self.out = torch.nn.Linear(16, 16), torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)
        self.head = torch.nn.Linear(16, 40)

    def forward(self, t):
        x = self.embed(t)
        b, n, d = x.shape
        y = self.ln1(x)
        q, k, v = (m(y).view(b, n, 4, 4).transpose(1, 2) for m in self.qkv)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        x = x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))
        return self.head(x)


def test_a_gpt_block_with_scaled_dot_product_attention_traces():
    torch.manual_seed(0)
    model = _GPT().eval()
    tokens = np.random.default_rng(0).integers(0, 40, (3, 10))
    g = from_torch(model, tokens[:1])
    kinds = sorted(g.nodes[n].kind for n in g.nodes)
    assert kinds.count("Attention") == 1 and kinds.count("Projection") == 7 and kinds.count("Norm") == 2
    with torch.no_grad():
        ref = model(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(analog.evaluate(g, tokens)[g.outputs[0]], ref, rtol=1e-5, atol=1e-5)
    cg = compile_graph(g, tokens, coding="ternary")
    r = simulate_sequence(cg, tokens)
    assert r.logits.shape == (3, 10, 40) and len(r.projections) == 7
    with pytest.raises(UnsupportedOperator, match="only causal attention"):
        from_torch(_GPT(causal=False).eval(), tokens[:1])
