#!/usr/bin/python3
"""The C training step (core/elbo.c + core/agent.c: agent_train_step) written in PyTorch.

Same model, same objective, same update, for `make bench-train` to compare against:
  embed     SiLU(Linear([z_{t-1}, a_{t-1}]))                      (dz+da -> H)
  GRU       torch.nn.GRUCell: gates (r, u, n) in the C's order,
            n = tanh(Wx_n x + bx_n + r * (Wh_n h + bh_n)), h' = (1 - u) n + u h
  prior     dh -> H -> 2dz;  posterior [h, x~, r~] -> H -> 2dz;  std = softplus(raw) + min_std
  heads     obs, reward, action prior (2da), value, continuation (a logit; its output bias
            starts at 4): [h, z] -> H -> H -> out (head_layers = 2)
  main pass step by step over L (embedding, GRU, posterior, reparameterised sample); prior,
  decoder and continuation heads, action prior and value batched over all L*B rows; state KL
  with free nats; episode end: Bernoulli log-likelihood of "the episode goes on" (target: not
  terminal) under the continuation logit at every valid step, weight cont_weight;
  overshooting: open-loop prior rollouts of overshoot_len steps from the posterior states at
  t0 = 0, 5, 10, ... with their decoder likelihoods and the continuation likelihood (weight
  cont_weight inside the overshooting term), gradients flowing back into the start states; as in
  the C, a rollout's first step is the main pass's transition into t0 + 1 (not computed again),
  and the decoder and continuation heads run once over the main pass's and the rollouts' rows;
  info gain with K prior samples on 4 sequences (no gradient, reported); action prior
  cross-entropy of the taken action under the tanh-squashed Gaussian on detached states; value
  lambda-return regression bootstrapped by a target head (EMA 0.01); Adam with global-norm
  clipping.
The data (a batch of normalised observations, rewards and actions) is made once: the data path is
not what is timed. The noise is drawn every step, as the C step does.

Usage: /usr/bin/python3 bench/torch_train.py [--threads N] [--steps N] [--seconds S] [--z-dim N]
       /usr/bin/python3 bench/torch_train.py --check DUMP   (compare with `bench_train --dump`)
The last line is `summary: torch_steps_per_s=...` for the make target's glue script.
"""
import argparse
import math
import os
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--steps", type=int, default=0, help="timed steps (0: about --seconds)")
ap.add_argument("--seconds", type=float, default=6.0)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--z-dim", type=int, default=16)
ap.add_argument("--foreach", type=int, default=1, help="Adam's multi-tensor path (1) or not (0)")
ap.add_argument("--check", metavar="DUMP", help="check against a C dump instead of timing")
args = ap.parse_args()
sys.stdout.reconfigure(line_buffering=True)  # lines as they come, also into a pipe

# One thread by default, like the C side's single trainer thread with one BLAS thread. Torch's
# sgemm is OpenBLAS (Debian links libblas.so.3 to it): its thread count is set too.
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)
try:
    import ctypes

    ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(args.threads)
except (OSError, AttributeError):
    pass
torch.set_flush_denormal(True)  # the C side sets FTZ/DAZ (vm_thread_init)

# model_config_defaults with the benchmark's sizes
DX, DA, DH, DZ, HID = 5, 1, 128, args.z_dim, 128
HEAD_LAYERS = 2
OBS_STD, REW_STD, MIN_STD = 0.1, 0.1, 0.05
FREE_NATS, BETA_Z, BETA_A, OVERSHOOT, OS_LEN = 1.0, 1.0, 1.0, 1.0, 10
VALUE_WEIGHT, DISCOUNT, LAMBDA, INFO_K, INFO_SEQS = 1.0, 0.99, 0.95, 4, 4
CONT_WEIGHT, CONT_BIAS0 = 1.0, 4.0
B, L = 32, 32
LR, CLIP = 1e-3, 100.0
TAU = 0.01
LOG_2PI = math.log(2.0 * math.pi)
D = min(OS_LEN, L - 1)
STRIDE = max(D // 2, 1)
STARTS = list(range(0, L - 1, STRIDE))  # t0 = 0, stride, ... <= L - 2
NS = len(STARTS)
RO = NS * B
NB = min(B, INFO_SEQS)


class MLP(nn.Module):
    """Linear layers with SiLU between them (and after the last when out_act)."""

    def __init__(self, dims, out_act=False, out_gain=0.1):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1))
        self.out_act = out_act
        with torch.no_grad():  # the C's mlp_init: U(+-1/sqrt(fan_in)), zero biases
            for i, lin in enumerate(self.layers):
                bound = 1.0 / math.sqrt(lin.in_features)
                if i == len(self.layers) - 1:
                    bound *= out_gain
                lin.weight.uniform_(-bound, bound)
                lin.bias.zero_()

    def forward(self, x):
        n = len(self.layers)
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i < n - 1 or self.out_act:
                x = F.silu(x)
        return x


def head(out):
    return MLP([DH + DZ] + [HID] * HEAD_LAYERS + [out])


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = MLP([DZ + DA, HID], out_act=True, out_gain=1.0)
        self.gru = nn.GRUCell(HID, DH)
        with torch.no_grad():  # the C's gru_init
            bound = 1.0 / math.sqrt(DH)
            self.gru.weight_ih.uniform_(-bound, bound)
            self.gru.weight_hh.uniform_(-bound, bound)
            self.gru.bias_ih.zero_()
            self.gru.bias_hh.zero_()
        self.prior = MLP([DH, HID, 2 * DZ])
        self.post = MLP([DH + DX + 1, HID, 2 * DZ])
        self.obs_head = head(DX)
        self.rew_head = head(1)
        self.actor = head(2 * DA)
        self.value = head(1)
        self.cont_head = head(1)
        with torch.no_grad():  # model_init_params: the episode goes on (p = 0.98) at the start
            self.cont_head.layers[-1].bias.fill_(CONT_BIAS0)

    # the C's parameter groups, in layout order
    def groups(self):
        return [("embed", self.embed), ("gru", self.gru), ("prior", self.prior),
                ("posterior", self.post), ("obs_head", self.obs_head),
                ("reward_head", self.rew_head), ("action_prior", self.actor),
                ("value", self.value), ("continue_head", self.cont_head)]


def gauss(raw):
    mu, s = raw.chunk(2, dim=-1)
    return mu, F.softplus(s) + MIN_STD


def fixed_logpdf(x, mu, std):
    """Sum over the last dimension of log N(x; mu, std) with a fixed std."""
    return (-0.5 * (x - mu).square() / (std * std) - (math.log(std) + 0.5 * LOG_2PI)).sum(-1)


def cont_loglik(logit, goes_on):
    """Bernoulli log-likelihood of "the episode goes on" (goes_on 1) or ends (0) under the logit:
    log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) = -softplus(l)."""
    return torch.where(goes_on > 0, -F.softplus(-logit), -F.softplus(logit))


def os_plan(d):
    """Overshooting bookkeeping (data only): per rollout step j and row ro = s*B + b, the target
    time, its validity (the chain of the C's `alive`) and the action fed in; like the C, only the
    rows [0, n_j) that hold a live rollout are computed at step j, and the heads see those rows
    packed (step after step)."""
    t0 = torch.tensor(STARTS).view(NS, 1, 1)
    j = torch.arange(D).view(1, D, 1)
    t = (t0 + 1 + j).expand(NS, D, B)  # (NS, D, B)
    tc = t.clamp(max=L - 1)
    bi = torch.arange(B).view(1, 1, B).expand(NS, D, B)
    ok = (t < L) & (d["mask"][tc, bi] > 0) & (d["first"][tc, bi] == 0)
    ok = ok & (d["has_act"][(tc - 1).clamp(min=0), bi] > 0)
    ok = ok & (d["mask"][torch.tensor(STARTS)].view(NS, 1, B) > 0)
    ok = ok.int().cumprod(dim=1).bool()  # alive: stays valid only while every step is
    # (D, Ro) order, ro = s * B + b
    tcj = tc.permute(1, 0, 2).reshape(D, RO)
    bij = bi.permute(1, 0, 2).reshape(D, RO)
    okj = ok.permute(1, 0, 2).reshape(D, RO)
    act = d["act_in"][tcj, bij] * okj.unsqueeze(-1)
    n = []
    for jj in range(D):
        live = okj[jj].nonzero()
        n.append(int(live.max()) + 1 if live.numel() else 0)
    pt = torch.cat([tcj[jj, : n[jj]] for jj in range(D)])
    pb = torch.cat([bij[jj, : n[jj]] for jj in range(D)])
    pok = torch.cat([okj[jj, : n[jj]] for jj in range(D)]).float()
    return n, pt, pb, pok, act


def objective(model, target_value, d, eps_q, eps_os, eps_info):
    """The loss of core/elbo.c: returns (loss, terms dict)."""
    xn, rn, act_in = d["xn"], d["rn"], d["act_in"]
    mask, keep = d["mask"], d["keep"]
    n_valid = mask.sum()

    # main pass, step by step
    h = xn.new_zeros(B, DH)
    z = xn.new_zeros(B, DZ)
    hs, zs, mqs, sqs = [], [], [], []
    for t in range(L):
        k = keep[t].unsqueeze(-1)
        hp, zp = h * k, z * k
        e = model.embed(torch.cat([zp, act_in[t]], dim=-1))
        h = model.gru(e, hp)
        mq, sq = gauss(model.post(torch.cat([h, xn[t], rn[t].unsqueeze(-1)], dim=-1)))
        z = mq + sq * eps_q[t]
        hs.append(h)
        zs.append(z)
        mqs.append(mq)
        sqs.append(sq)
    Hs, Zs = torch.stack(hs), torch.stack(zs)  # (L, B, .)
    mq, sq = torch.stack(mqs).view(L * B, DZ), torch.stack(sqs).view(L * B, DZ)
    Hr, Zr = Hs.view(L * B, DH), Zs.view(L * B, DZ)
    m = mask.view(-1)

    # prior over all rows, state KL with free nats
    mp, sp = gauss(model.prior(Hr))
    kl = torch.log(sp / sq) + (sq.square() + (mq - mp).square()) / (2.0 * sp.square()) - 0.5
    kl = kl.sum(-1)
    kl_sum = (kl * m).sum()
    kl_loss = (kl.clamp(min=FREE_NATS) * m).sum()

    # overshooting: open-loop prior rollouts from the posterior states at the start points. Like
    # the C, the first step is taken from the main pass: from the posterior state at t0 with the
    # action into t0 + 1 it is the main pass's transition into t0 + 1 (h and prior), for every
    # live rollout (dead rows get the same values and stay out of the loss).
    n_live, pt, pb, pok, os_act = d["os_plan"]
    next_rows = torch.tensor(STARTS) + 1
    h = Hs[next_rows].reshape(RO, DH)
    mu0 = mp.view(L, B, DZ)[next_rows].reshape(RO, DZ)
    sd0 = sp.view(L, B, DZ)[next_rows].reshape(RO, DZ)
    ohs, ozs = [], []
    for j in range(D):
        n = n_live[j]
        if n == 0:
            break
        if j == 0:
            h, mu, sd = h[:n], mu0[:n], sd0[:n]
        else:
            h, z = h[:n], z[:n]
            e = model.embed(torch.cat([z, os_act[j, :n]], dim=-1))
            h = model.gru(e, h)
            mu, sd = gauss(model.prior(h))
        z = mu + sd * eps_os[j, :n]
        ohs.append(h)
        ozs.append(z)

    # decoder and episode-end heads over the main pass's rows and the rollouts' packed live rows
    # together, as the C runs them
    R = L * B
    hz = torch.cat([Hr, Zr], dim=-1)
    os_hz = torch.cat([torch.cat(ohs), torch.cat(ozs)], dim=-1)
    all_hz = torch.cat([hz, os_hz])
    obs_all = model.obs_head(all_hz)
    rew_all = model.rew_head(all_hz).squeeze(-1)
    cont_all = model.cont_head(all_hz).squeeze(-1)
    obs_out, os_obs = obs_all[:R], obs_all[R:]
    rew_out, os_rew = rew_all[:R], rew_all[R:]
    cont_out, os_cont = cont_all[:R], cont_all[R:]

    has_rew = d["has_rew"].view(-1)
    lq_obs = fixed_logpdf(xn.view(-1, DX), obs_out, OBS_STD)
    lq_rew = fixed_logpdf(rn.view(-1, 1), rew_out.unsqueeze(-1), REW_STD)
    obs_ll = (lq_obs * m).sum()
    rew_ll = (lq_rew * m * has_rew).sum()

    # episode end: the continuation head's Bernoulli likelihood at every valid step
    goes_on = 1.0 - d["terminal"]
    cont_ll = (cont_loglik(cont_out, goes_on.view(-1)) * m).sum()

    # the rollouts' likelihoods (the episode-end one weighted by cont_weight)
    os_ll_row = fixed_logpdf(xn[pt, pb], os_obs, OBS_STD)
    os_ll_row = os_ll_row + d["has_rew"][pt, pb] * fixed_logpdf(rn[pt, pb].unsqueeze(-1),
                                                                 os_rew.unsqueeze(-1), REW_STD)
    os_ll_row = os_ll_row + CONT_WEIGHT * cont_loglik(os_cont, goes_on[pt, pb])
    n_os = pok.sum()
    os_ll = (os_ll_row * pok).sum()

    # info gain (reported only): K prior samples on the first NB sequences
    with torch.no_grad():
        mp4 = mp.view(L, B, DZ)[:, :NB]
        sp4 = sp.view(L, B, DZ)[:, :NB]
        h4 = Hs[:, :NB]
        zk = mp4.unsqueeze(0) + sp4.unsqueeze(0) * eps_info  # (K, L, NB, DZ)
        hzk = torch.cat([h4.unsqueeze(0).expand(INFO_K, L, NB, DH), zk], dim=-1)
        hzk = hzk.reshape(INFO_K * L * NB, DH + DZ)
        io = model.obs_head(hzk).view(INFO_K, L, NB, DX)
        ir = model.rew_head(hzk).view(INFO_K, L, NB, 1)
        x4, r4, hr4 = xn[:, :NB], rn[:, :NB].unsqueeze(-1), d["has_rew"][:, :NB]
        lk = fixed_logpdf(x4, io, OBS_STD) + hr4 * fixed_logpdf(r4, ir, REW_STD)
        lq = (lq_obs + lq_rew * has_rew).view(L, B)[:, :NB]
        m4 = mask[:, :NB]
        info = lq - (torch.logsumexp(lk, dim=0) - math.log(INFO_K))
        info_gain = (info * m4).sum() / m4.sum()

    # action prior on the detached states: cross-entropy of the taken action
    hzd = hz.detach()
    amu, astd = gauss(model.actor(hzd))
    # u = atanh(a) of the taken action (unit box: mid 0, half 1) and log|da/du|, in double like the
    # C (clipped actions sit at +-1, where float atanh would lose digits); data only, no gradient
    a = d["act_out"].view(-1, DA).double().clamp(-(1.0 - 1e-6), 1.0 - 1e-6)
    u = torch.atanh(a)
    log_jac = (2.0 * (math.log(2.0) - u.abs() - F.softplus(-2.0 * u.abs()))).sum(-1).float()
    u = u.float()
    logp = (-0.5 * ((u - amu) / astd).square() - torch.log(astd) - 0.5 * LOG_2PI).sum(-1) - log_jac
    has_act = d["has_act"].view(-1) * m
    n_act = has_act.sum()
    act_sum = -(logp * has_act).sum()
    actor_loss = BETA_A * act_sum / n_act

    # value: lambda-returns of normalised rewards bootstrapped by the target head
    v = model.value(hzd).view(L, B)
    with torch.no_grad():
        vt = target_value(hzd).view(L, B)
        term = d["terminal"]
        G = xn.new_zeros(B)
        next_ok = xn.new_zeros(B)
        gs, hass = [None] * L, [None] * L
        for t in range(L - 1, -1, -1):
            if t + 1 < L:
                vn = vt[t + 1] * (1.0 - term[t + 1])
                boot = rn[t + 1] + DISCOUNT * ((1.0 - LAMBDA) * vn + LAMBDA * G)
            else:
                boot = vt[t]
            tgt = torch.where(next_ok > 0, boot, vt[t])
            tgt = torch.where(term[t] > 0, torch.zeros_like(G), tgt)
            hass[t] = mask[t] * torch.clamp(term[t] + next_ok, max=1.0)
            gs[t] = tgt
            G = tgt
            next_ok = mask[t]
        Gt, has_v = torch.stack(gs), torch.stack(hass)
        n_value = has_v.sum()
    value_loss = 0.5 * ((v - Gt).square() * has_v).sum() / n_value

    loss = (-obs_ll - rew_ll - CONT_WEIGHT * cont_ll + BETA_Z * kl_loss) / n_valid
    loss = loss + OVERSHOOT * (-os_ll / n_os)
    loss = loss + actor_loss + VALUE_WEIGHT * value_loss
    terms = {"loss": loss, "obs_nll": -obs_ll / n_valid, "reward_nll": -rew_ll / n_valid,
             "state_kl": kl_sum / n_valid, "overshoot_nll": -os_ll / n_os,
             "info_gain": info_gain, "actor_loss": actor_loss, "value_loss": value_loss,
             "cont_nll": -cont_ll / n_valid}
    return loss, terms


def make_noise():
    return (torch.randn(L, B, DZ), torch.randn(D, RO, DZ), torch.randn(INFO_K, L, NB, DZ))


def synthetic_batch():
    """Random tensors of the shapes and flags a replay batch of long episodes has."""
    g = torch.Generator().manual_seed(1)
    d = {
        "xn": torch.randn(L, B, DX, generator=g),
        "rn": torch.randn(L, B, generator=g),
        "act_in": torch.rand(L, B, DA, generator=g) * 2 - 1,
        "act_out": torch.rand(L, B, DA, generator=g) * 2 - 1,
        "mask": torch.ones(L, B),
        "first": torch.zeros(L, B),
        "has_rew": torch.ones(L, B),
        "has_act": torch.ones(L, B),
        "terminal": torch.zeros(L, B),
    }
    d["first"][0, : B // 4] = 1.0  # some sequences start at an episode's first step
    d["has_rew"][0, : B // 4] = 0.0
    d["act_in"][0, : B // 4] = 0.0
    return finish_batch(d)


def finish_batch(d):
    keep = 1.0 - d["first"]
    keep[0] = 0.0  # the state starts at zero at t = 0 either way
    d["keep"] = keep
    d["os_plan"] = os_plan(d)
    return d


def train_setup():
    model = Model()
    target = head(1)
    target.load_state_dict(model.value.state_dict())
    for p in target.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                           foreach=bool(args.foreach))
    return model, target, opt


def train_step(model, target, opt, d):
    eps = make_noise()
    opt.zero_grad(set_to_none=True)
    loss, _ = objective(model, target, d, *eps)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    with torch.no_grad():
        for tp, p in zip(target.parameters(), model.value.parameters()):
            tp.lerp_(p, TAU)
    return loss


# ---- the check against a C dump (bench_train --dump) --------------------------------------


def read_dump(path):
    """The dump: lines `name n` then, after a line `data`, the float32 arrays in that order."""
    with open(path, "rb") as f:
        blob = f.read()
    head_end = blob.index(b"\ndata\n") + len(b"\ndata\n")
    names = [ln.split() for ln in blob[:head_end].decode().splitlines()[:-1]]
    arrays, off = {}, head_end
    for name, n in names:
        n = int(n)
        arrays[name] = torch.frombuffer(bytearray(blob[off:off + 4 * n]), dtype=torch.float32)
        off += 4 * n
    return arrays


def load_group(module, flat):
    """The C's layout of a group: per linear layer w (out, in) then b (out); the GRU's wx, wh,
    bx, bh (torch's weight_ih, weight_hh, bias_ih, bias_hh with the same gate order)."""
    if isinstance(module, nn.GRUCell):
        tensors = [module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh]
    else:
        tensors = [t for lin in module.layers for t in (lin.weight, lin.bias)]
    if sum(t.numel() for t in tensors) != flat.numel():
        raise SystemExit(f"check: a C parameter group of {flat.numel()} floats does not match "
                         f"{type(module).__name__} {[tuple(t.shape) for t in tensors]}")
    off = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[off:off + t.numel()].view_as(t))
            off += t.numel()
    return tensors


# Float rounding alone leaves about 1e-7; a missing or different term shows at 1e-6 to 1e-4 (the
# continuation head, left out, moved the loss by 4e-6 and the recurrent gradients by 5e-5), so the
# bounds sit between the two. The info gain (reported, no gradient) is a difference of two
# log-likelihoods of about 100 times its size: its rounding reaches 1e-5 relative.
TERM_TOL, INFO_TOL, GRAD_TOL = 2e-6, 1e-4, 5e-6


def check(path):
    a = read_dump(path)
    cfg = a["config"].tolist()
    if [int(x) for x in cfg] != [DX, DA, DH, DZ, HID, B, L, D]:
        print(f"check: the dump's shapes {cfg} differ from this script's")
        return 1
    model = Model()
    target = head(1)
    groups = dict(model.groups())
    c_groups = sorted(k[2:] for k in a if k.startswith("g_"))
    if c_groups != sorted(groups):
        print(f"check: the C parameter groups {c_groups} differ from this script's {sorted(groups)}")
        return 1
    tensors = {name: load_group(mod, a["p_" + name]) for name, mod in groups.items()}
    load_group(target, a["t_value"])
    d = {"xn": a["xn"].view(L, B, DX), "rn": a["rn"].view(L, B),
         "act_in": a["act_in"].view(L, B, DA), "act_out": a["act_out"].view(L, B, DA)}
    for k in ("mask", "first", "has_rew", "has_act", "terminal"):
        d[k] = a[k].view(L, B)
    if a["has_dist"].sum() > 0:
        print("check: the dump has planner distributions (this mirror uses the cross-entropy)")
        return 1
    d = finish_batch(d)
    eps_q = a["eps_q"].view(L, B, DZ)
    eps_os = a["eps_os"].view(D, RO, DZ)
    eps_info = a["eps_info"].view(INFO_K, L, NB, DZ)
    loss, terms = objective(model, target, d, eps_q, eps_os, eps_info)
    loss.backward()
    names = ["loss", "obs_nll", "reward_nll", "state_kl", "overshoot_nll", "info_gain",
             "actor_loss", "value_loss", "cont_nll"]
    if a["terms"].numel() != len(names):
        print(f"check: the dump has {a['terms'].numel()} terms, this script {len(names)}")
        return 1
    ok = True
    for i, name in enumerate(names):
        c, t = float(a["terms"][i]), float(terms[name])
        rel = abs(c - t) / max(abs(c), 1e-3)
        ok &= rel < (INFO_TOL if name == "info_gain" else TERM_TOL)
        print(f"check: {name:14s} C {c:12.6f}  torch {t:12.6f}  rel.err {rel:.1e}")
    for name, ts in tensors.items():
        gt = torch.cat([t.grad.reshape(-1) for t in ts])
        gc = a["g_" + name]
        rel = float((gt - gc).norm() / gc.norm().clamp(min=1e-12))
        ok &= rel < GRAD_TOL
        print(f"check: grad {name:13s} |g| C {float(gc.norm()):10.4f}  rel.err {rel:.1e}")
    print("check: the PyTorch step computes the C objective and gradient" if ok else
          "check: MISMATCH")
    return 0 if ok else 1


def main():
    if args.check:
        return check(args.check)
    torch.manual_seed(0)
    model, target, opt = train_setup()
    d = synthetic_batch()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch_train: torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{n_params} parameters, Adam foreach={bool(args.foreach)}")
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        train_step(model, target, opt, d)
    per_step = (time.perf_counter() - t0) / args.warmup
    steps = args.steps or max(10, math.ceil(args.seconds / per_step))
    print(f"torch_train: warm-up {args.warmup} steps at {per_step * 1e3:.2f} ms/step; "
          f"timing {steps} steps", flush=True)
    ms = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    next_report = 2.0
    for i in range(steps):
        s0 = time.perf_counter()
        loss = train_step(model, target, opt, d)
        s1 = time.perf_counter()
        ms.append((s1 - s0) * 1e3)
        if s1 - t0 >= next_report:
            print(f"torch_train: {i + 1}/{steps} steps, {s1 - t0:.1f} s", file=sys.stderr)
            next_report += 2.0
    elapsed = time.perf_counter() - t0
    cpu_ms = (time.process_time() - c0) * 1e3 / steps
    ms.sort()
    p50 = ms[max(0, math.ceil(0.5 * steps) - 1)]
    p99 = ms[max(0, math.ceil(0.99 * steps) - 1)]
    sps = steps / elapsed
    print(f"torch_train: {steps} steps in {elapsed:.2f} s: {sps:.2f} steps/s, "
          f"{elapsed * 1e3 / steps:.2f} ms/step (p50 {p50:.2f}, p99 {p99:.2f}); "
          f"CPU time {cpu_ms:.2f} ms/step; last loss {float(loss):.3f}")
    print(f"summary: torch_steps_per_s={sps:.3f} torch_ms_per_step={elapsed * 1e3 / steps:.3f} "
          f"torch_p50_ms={p50:.3f} torch_p99_ms={p99:.3f} torch_cpu_ms_per_step={cpu_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
