"""Lesson page — noise = score, Langevin dynamics, the probability-flow ODE and likelihood.
Thin: widgets, cached calls into lessons.score, render."""

from functools import partial

import numpy as np
import streamlit as st
import torch

from course import (
    chart,
    download,
    equation,
    explain,
    exports,
    frame,
    ground_truth_gmm,
    mnist,
    model_for,  # "use my model": the sidebar's choice of a model trained in the training lab
    show_source,
    try_checkpoint,
    url_choice,
    url_int,
)
from lessons import score as lesson
from lessons.settings import FrameState, build_schedule
from toy_models.gmm import AnalyticModel
from toy_models.likelihood import ode_log_likelihood
from toy_models.samplers import pf_ode_drift, sample_langevin

N_BACKDROP = 800  # draws of q(x_t) behind the arrows
TOLERANCES = [1e-2, 1e-3, 1e-4, 1e-5]  # ODE solver rtol = atol
N_GRID = 40  # the ODE density heatmap is N_GRID x N_GRID (60 x 60 of the shipped MLP: ~50 s on one loaded core)


def weights_present(name: str) -> bool:
    from toy_models.checkpoints import resolve_paths

    return all(p.exists() for p in resolve_paths(name))


@st.cache_resource(max_entries=16)
def _models(state: FrameState, shipped: tuple):
    """(the model the page runs, the exact AnalyticModel, its name) on the sidebar's schedule."""
    s = build_schedule(state)
    exact = AnalyticModel(ground_truth_gmm(), s)
    ck, _ = try_checkpoint(shipped[1])  # "gmm", or the user's own model trained on gmm (app.model_for)
    if ck is None:
        return exact, exact, "exact model (AnalyticModel): the shipped 'gmm' weights are unavailable"
    side = ck.sidecar
    whose = "shipped" if shipped[1] == "gmm" else "your model"
    name = (
        f"learned: {whose} '{ck.recipe.get('name')}' ({ck.recipe.get('network')}, {side.get('steps')} training "
        f"steps, trained on {ck.schedule.describe()}), unconditional"
        f"{' (null label)' if getattr(ck.model, 'num_classes', 0) else ''}"
    )
    return lesson.OnSchedule(ck.model, ck.schedule, s), exact, name


@st.cache_data(max_entries=64)
def fields(state: FrameState, shipped: tuple, t: int):
    model, exact, _ = _models(state, shipped)
    return lesson.compare_fields(model, exact, build_schedule(state), t, n_grid=21, n_samples=1000, seed=state.seed)


@st.cache_data(max_entries=64)
def backdrop(state: FrameState, t: int):
    return lesson.q_t_samples(ground_truth_gmm(), build_schedule(state), t, N_BACKDROP, state.seed).numpy()


@st.cache_data(max_entries=16)
def errors_over_t(state: FrameState, shipped: tuple):
    model, exact, _ = _models(state, shipped)
    s = build_schedule(state)
    return lesson.error_vs_t(model, exact, s, lesson.log_times(s.T, 16), n=500, seed=state.seed)


@st.cache_data(max_entries=64)
def dsm(state: FrameState, shipped: tuple, t: int):
    model, exact, _ = _models(state, shipped)
    return lesson.dsm_check(model, exact, build_schedule(state), t, n=4000, seed=state.seed)


@st.cache_data(max_entries=32, show_spinner="Running annealed Langevin dynamics ...")
def langevin(state: FrameState, shipped: tuple, levels: int, n_steps_each: int, step_size: float, rule: str):
    model, _, _ = _models(state, shipped)
    return lesson.langevin_run(
        model,
        build_schedule(state),
        ground_truth_gmm(),
        n=500,
        levels=levels,
        n_steps_each=n_steps_each,
        step_size=step_size,
        step_rule=rule,
        seed=state.seed,
    )


@st.cache_data(max_entries=16, show_spinner="Running the ODE and DDPM from the same noise ...")
def flows(state: FrameState, shipped: tuple):
    model, _, _ = _models(state, shipped)
    return lesson.ode_vs_ddpm(model, build_schedule(state), n=400, seed=state.seed, ode_steps=100)


@st.cache_data(max_entries=64)
def density_at(state: FrameState, t: float):
    ax, pts = lesson.grid(lesson.HALF_WIDTH, 60)
    a = float(build_schedule(state).alpha_bar(torch.tensor(float(t))))
    return ax, ground_truth_gmm().log_prob(pts, a).numpy()


def _bar(text):
    bar = st.progress(0.0, text=text)
    return bar, (lambda f: bar.progress(float(min(max(f, 0.0), 1.0)), text=text))


@st.cache_data(max_entries=16, show_spinner=False)
def likelihoods(state: FrameState, shipped: tuple, rtol: float, _progress=None):
    """Points, the N_GRID x N_GRID density grid and the NLL table, for the exact model and (if shipped) the
    learned one."""
    s = build_schedule(state)
    model, exact, _ = _models(state, shipped)
    gmm = ground_truth_gmm()
    runs = {"exact model": lesson.exact_ode_model(gmm, s)}
    if model is not exact:
        runs["learned model"] = model
    x = gmm.sample(256, generator=torch.Generator().manual_seed(state.seed + 7))[0]
    main = "learned model" if "learned model" in runs else "exact model"  # the grid: one solve, the model in use
    n_jobs, done = 2 * len(runs) + 1, [0]

    def sub(d, tot):
        if _progress:
            _progress((done[0] + d / max(tot, 1)) / n_jobs)

    out = {"x": x.numpy(), "true": gmm.log_prob(x).numpy(), "points": {}, "grid": {}, "elbo": {}}
    for name, m in runs.items():
        out["points"][name] = lesson.ode_log_px(m, s, x, rtol, progress=sub)
        done[0] += 1
        if name == main:
            ax, out["grid"][name] = lesson.density_grid(m, s, N_GRID, rtol, progress=sub)
            done[0] += 1
        elbo_model = exact if name == "exact model" else m
        out["elbo"][name] = float(
            np.mean(lesson.elbo_nll(elbo_model, s, x, stride=max(1, s.T // 200), seed=state.seed, progress=sub))
        )
        done[0] += 1
    out["axis"] = ax
    out["true_grid"] = gmm.log_prob(lesson.grid(lesson.HALF_WIDTH, N_GRID)[1]).numpy()
    return out


@st.cache_data(max_entries=8, show_spinner=False)
def mnist_bpd(n_digits: int, n_probes: int, seed: int, _progress=None):
    ck, _ = try_checkpoint("mnist")
    d = mnist()
    return lesson.mnist_bits_per_dim(
        ck.model,
        ck.schedule,
        d.held_out(n_digits)[0],
        y=None,
        n_probes=n_probes,
        rtol=1e-4,
        elbo_stride=10,
        seed=seed,
        progress=_progress,
    )


def run_flag(key: str, label: str) -> bool:
    """A button that, once pressed, keeps its section computed on later reruns."""
    if st.button(label, key=key):
        st.session_state[f"{key}_on"] = True
    return bool(st.session_state.get(f"{key}_on"))


# --- the page: one function per section --------------------------------------------------------------
def introduction(state: FrameState, shipped: tuple) -> None:
    s = build_schedule(state)
    _, _, model_name = _models(state, shipped)
    st.title("5 · Noise = score, and likelihood")
    explain(lesson.INTRO)
    _, err = try_checkpoint("gmm")
    if err:
        st.warning(
            f"{err} — meanwhile the page runs the exact model wherever it needs a model.", icon=":material/warning:"
        )
    st.caption(
        f"Data: the Gaussian mixture (exact score and density known), whatever the data setting. Model: "
        f"{model_name}; evaluated on the sidebar's schedule {s.describe()} at equal ᾱ."
    )


def noise_is_score(state: FrameState, shipped: tuple) -> int:
    """Section 1: the learned and the exact score field at t, where they differ; returns t (section 2 uses it)."""
    s = build_schedule(state)
    st.header("1 · The predicted noise is a scaled score")
    explain(lesson.SCORE_IDEA)
    equation(lesson.EQ_SCORE)
    t = url_int("t", "t (time step)", 1, s.T, max(1, s.T // 10), key="score_t")
    fc = fields(state, shipped, t)
    c = st.columns(4)
    c[0].metric("ᾱ_t", f"{fc.alpha_bar:.4g}")
    c[1].metric(
        "E|s_θ − ∇log q|² on q(x_t)", f"{fc.fisher:.3g}", help=f"± {fc.fisher_se:.2g} (Monte Carlo, 1,000 draws)"
    )
    c[2].metric("relative to E|∇log q|²", f"{fc.relative:.2%}")
    c[3].metric("ε error E|ε̂ − ε*|²", f"{fc.eps_mse:.3g}")
    chart(lesson.fig_fields(fc, backdrop(state, t)), key="fig_fields")
    st.caption(lesson.LOOK_FIELDS)
    explain(lesson.WHY_WRONG)
    c1, c2 = st.columns(2)
    chart(lesson.fig_error_map(fc), key="fig_error_map", where=c1)
    c1.caption(
        f"{lesson.LOOK_ERROR_MAP} Median error where q(x_t) is within 10⁻³ of its peak: {fc.error_where(True):.3g}; "
        f"elsewhere (far from the data): {fc.error_where(False):.3g}."
    )
    e = errors_over_t(state, shipped)
    chart(lesson.fig_error_vs_t(e, t), key="fig_error_t", where=c2)
    c2.caption(
        f"{lesson.LOOK_ERROR_T} Score error at t = {e['t'][0]:g}: {e['fisher'][0]:.3g}; at t = {e['t'][-1]:g}: "
        f"{e['fisher'][-1]:.3g} (500 draws of q(x_t) each)."
    )
    chart(lesson.fig_scale(*lesson.score_scale(s), t_marker=t), key="fig_scale")
    st.caption(lesson.LOOK_SCALE)
    show_source(lesson.model_score, AnalyticModel.score)
    return t


def score_matching(state: FrameState, shipped: tuple, t: int) -> None:
    """Section 2: the DSM loss against the ε-loss at section 1's t."""
    st.header("2 · Denoising score matching is the ε-loss, reweighted")
    explain(lesson.DSM_TEXT)
    equation(lesson.EQ_DSM)
    d = dsm(state, shipped, t)
    st.dataframe(
        [
            {"quantity": "ε-loss E|ε̂ − ε|² (DDPM)", "value": d.eps_loss},
            {"quantity": "weight 1/(1 − ᾱ_t)", "value": d.weight},
            {"quantity": "weight × ε-loss", "value": d.weight * d.eps_loss},
            {"quantity": "DSM loss E|s_θ + ε/√(1−ᾱ_t)|²", "value": d.dsm},
            {"quantity": "DSM loss of the exact score (the floor)", "value": d.dsm_exact},
            {"quantity": "excess DSM = DSM − floor", "value": d.dsm - d.dsm_exact},
            {"quantity": "Fisher divergence E|s_θ − ∇log q|²", "value": d.fisher},
        ],
        hide_index=True,
    )
    st.caption(f"{lesson.LOOK_DSM} At t = {t}, 4,000 draws; standard error of the excess: {d.excess_se:.2g}.")
    equation(lesson.EQ_FISHER)
    show_source(lesson.dsm_check)


def langevin_dynamics(state: FrameState, shipped: tuple) -> None:
    """Section 3: the sampler's settings and, once run, its particles."""
    s = build_schedule(state)
    st.header("3 · Annealed Langevin dynamics with the score")
    explain(lesson.LANGEVIN_TEXT)
    equation(lesson.EQ_LANGEVIN)
    c = st.columns(4)
    rule = url_choice(
        "rule",
        "step-size rule",
        lesson.STEP_RULES,
        lesson.STEP_RULES[0],
        key="score_rule",
        widget=c[0].radio,
        help="sigma: h_i = h_L (1 − ᾱ_{t_i})/(1 − ᾱ_{t_L}) (Song & Ermon 2019); snr: h_i from a target "
        "signal-to-noise ratio (Song et al. 2021); h_L then unused",
    )
    step = url_choice(
        "eps",
        "step size h_L (last level)",
        list(lesson.STEP_SIZES),
        2e-5,
        key="score_step",
        widget=c[1].select_slider,
        format_func=lambda v: f"{v:g}",
    )
    each = url_int("each", "steps per level", 1, 50, 5, key="score_each", widget=c[2].slider)
    levels = url_int(
        "levels", "noise levels", 1, max(2, min(200, s.T)), min(100, s.T), key="score_levels", widget=c[3].slider
    )
    if run_flag("score_run_langevin", "Run Langevin (500 particles)"):
        langevin_particles(state, langevin(state, shipped, min(levels, s.T), each, step, rule))
    show_source(sample_langevin)


def langevin_particles(state: FrameState, r) -> None:
    """The Langevin run: where the particles went, the step sizes, and their paths as a GIF."""
    c1, c2 = st.columns([3, 2])
    chart(lesson.fig_langevin(r, backdrop(state, 1)), key="fig_langevin", where=c1)
    c1.caption(lesson.LOOK_LANGEVIN)
    chart(lesson.fig_weights(r), key="fig_weights", where=c2)
    c2.caption(lesson.LOOK_WEIGHTS)
    explain(
        f"Mean log q(x₀) of the samples: **{r.mean_log_q:.3f} nats** (data: {r.data_log_q:.3f}); "
        f"{r.escaped:.1%} of the particles left the plot or blew up; {r.nfe} score evaluations.",
        where=c2,
    )
    if r.escaped > 0.05:
        st.warning("The step size is too large for the narrowest features of q(x_t): particles overshoot.")
    download(
        "the particles' paths as a GIF",
        partial(
            exports.gif_from_points,
            r.paths,
            [f"Langevin: noise level t = {t:.0f}" for t in r.path_t],
            label="Langevin particles",
            role="learned",
            trails=range(r.paths.shape[1]),
            backdrop=backdrop(state, 1),
            radius=2,
        ),
        "langevin_paths.gif",
        key="dl_score_langevin",
        help=f"{r.paths.shape[1]} particles, {min(len(r.path_t), exports.MAX_FRAMES)} of {len(r.path_t)} kept steps.",
    )


def probability_flow(state: FrameState, shipped: tuple, ode_problem: str | None) -> None:
    """Section 4: the ODE and DDPM from the same noise, once run."""
    s = build_schedule(state)
    st.header("4 · The probability-flow ODE: same marginals, no noise")
    explain(lesson.SDE_TEXT)
    equation(lesson.EQ_SDE)
    explain(lesson.rate_example(s, build_schedule(state, "cosine")))
    explain(lesson.ODE_TEXT)
    equation(lesson.EQ_ODE)
    if ode_problem:
        st.info(ode_problem)
    elif run_flag("score_run_flow", "Run the ODE and DDPM from the same noise (400 points)"):
        fp = flows(state, shipped)
        chart(lesson.fig_flow(fp), key="fig_flow")
        st.caption(lesson.LOOK_FLOW)
        flow_gifs(state, fp)
        clouds_at_t(state, fp)
    show_source(pf_ode_drift)


def flow_gifs(state: FrameState, fp) -> None:
    """The ODE's and DDPM's paths as GIFs, side by side."""
    c1, c2 = st.columns(2)
    for col, (nm, ts_f, xs_f, role) in zip(
        (c1, c2), (("ODE", fp.ode_t, fp.ode_x, "truth"), ("DDPM", fp.ddpm_t, fp.ddpm_x, "learned"))
    ):
        download(
            f"the {nm} flow as a GIF",
            partial(
                exports.gif_from_points,
                xs_f,
                [f"{nm}: t = {t:.0f}" for t in ts_f],
                label=f"{nm} states x_t",
                role=role,
                trails=range(12),
                backdrop=backdrop(state, 1),
            ),
            f"flow_{nm.lower()}.gif",
            key=f"dl_score_{nm.lower()}",
            where=col,
            help=f"{xs_f.shape[1]} points from the same x_T, 12 paths traced; "
            f"{min(len(ts_f), exports.MAX_FRAMES)} of {len(ts_f)} kept steps.",
        )


def clouds_at_t(state: FrameState, fp) -> None:
    """The ODE's and DDPM's clouds at a chosen t over the exact q(x_t)."""
    s = build_schedule(state)
    tf = url_int("flow_t", "t at which to compare the clouds", 0, s.T, min(s.T, max(1, s.T // 4)), key="score_flow_t")
    to, xo = lesson.state_at(fp.ode_t, fp.ode_x, tf)
    td, xd = lesson.state_at(fp.ddpm_t, fp.ddpm_x, tf)
    clouds = {f"ODE states (t = {to:g})": xo, f"DDPM states (t = {td:g})": xd}
    ax, lq = density_at(state, tf)
    chart(lesson.fig_density_at_t(ax, lq, clouds, tf), key="fig_density_t")
    mc = lesson.marginal_check(ground_truth_gmm(), s, tf, clouds, seed=state.seed)
    st.dataframe([{"cloud": k, "mean log q(x_t), nats": v} for k, v in mc.items()], hide_index=True)
    st.caption(
        f"{lesson.LOOK_DENSITY_T} ODE: {fp.ode_nfe} model evaluations (Heun, {fp.ode_steps} steps); "
        f"DDPM: {fp.ddpm_nfe}."
    )


def likelihood(state: FrameState, shipped: tuple, ode_problem: str | None) -> None:
    """Section 5: log-likelihoods by the ODE, once run."""
    st.header("5 · Likelihood by integrating the ODE")
    explain(lesson.LIK_TEXT)
    equation(lesson.EQ_LIK)
    rtol = url_choice(
        "rtol",
        "solver tolerance (rtol = atol)",
        TOLERANCES,
        1e-4,
        key="score_rtol",
        widget=st.select_slider,
        format_func=lambda v: f"{v:g}",
    )
    if ode_problem:
        st.info(ode_problem)
    elif run_flag("score_run_lik", f"Compute log-likelihoods (256 points and a {N_GRID} × {N_GRID} grid)"):
        bar, prog = _bar("Integrating the probability-flow ODE ...")
        out = likelihoods(state, shipped, rtol, _progress=prog)
        bar.empty()
        log_p_at_points(out, rtol)
        nll_by_route(state, out)
    show_source(ode_log_likelihood, lesson.density_grid)


def log_p_at_points(out: dict, rtol: float) -> None:
    """The ODE's log p beside the true log q(x): at 8 points, then over the grid."""
    rows = []
    for i in range(8):
        row = {"x₁": out["x"][i, 0], "x₂": out["x"][i, 1], "true log q(x)": out["true"][i]}
        row.update({f"ODE log p, {k}": v.log_px[i] for k, v in out["points"].items()})
        rows.append(row)
    st.dataframe(rows, hide_index=True)
    st.caption(
        "Look for: each ODE log p beside the true log q(x) of the same point. "
        "Function evaluations of the adaptive solver (dopri5, rtol = atol = "
        f"{rtol:g}): "
        + "; ".join(f"{k}: {v.nfe} for the 256 points" for k, v in out["points"].items())
        + "; "
        + "; ".join(f"{k}: {v.nfe} for the {N_GRID} × {N_GRID} grid" for k, v in out["grid"].items())
        + "."
    )
    panels = {"true log q(x)": out["true_grid"]}
    panels.update({f"ODE log p, {k}": v.log_px for k, v in out["grid"].items()})
    chart(lesson.fig_density_pair(out["axis"], panels), key="fig_density_pair")
    st.caption(lesson.LOOK_DENSITY_PAIR)


def nll_by_route(state: FrameState, out: dict) -> None:
    """The mean NLL of the 256 points by each route: closed form, ODE, ELBO."""
    s = build_schedule(state)
    table = lesson.nll_table(
        ground_truth_gmm(), torch.as_tensor(out["x"]), {k: v.log_px for k, v in out["points"].items()}, out["elbo"]
    )
    chart(lesson.fig_nll(table), key="fig_nll")
    bpd = table.bpd()
    st.dataframe([{"route": k, "NLL, nats": v, "bits/dim": bpd[k]} for k, v in table.rows.items()], hide_index=True)
    gap = table.rows["ODE: exact model"] - table.rows["true −log q(x₀) (closed form)"]
    st.caption(
        f"{lesson.look_nll(table)} The exact model's ODE NLL is off the truth by {gap:+.4f} nats (solver "
        "tolerance, the start at t = 0.001, and ᾱ_T > 0). The ELBO is the bound of the ELBO lesson (Ho et al. "
        + (
            "2020, eq. 5), every term summed."
            if s.T <= 100 or s.T // 200 <= 1
            else f"2020, eq. 5): every term for t ≤ 100, above that every {max(1, s.T // 200)}-th term standing "
            "for its neighbours (an estimate of the sum)."
        )
    )


def digits_bits_per_dim(state: FrameState) -> None:
    """MNIST: bits/dim of the shipped model on held-out digits, by the ODE and by the ELBO."""
    st.subheader("MNIST: bits/dim of the shipped model on held-out digits")
    explain(lesson.density_text())
    explain(lesson.PUBLISHED_BPD)
    mk, merr = try_checkpoint("mnist")
    if merr:
        st.info(f"The MNIST model is unavailable: {merr}")
        return
    c = st.columns(2)
    n_digits = url_int("mnist_n", "held-out digits", 1, 8, 2, key="score_mnist_n", widget=c[0].slider)
    probes = url_int("probes", "Hutchinson probes", 1, 4, 1, key="score_mnist_probes", widget=c[1].slider)
    st.caption(
        f"Model: shipped 'mnist' ({mk.sidecar.get('steps')} training steps, {mk.schedule.describe()}); "
        "digits from the test split. The ODE is slow: many network evaluations per digit (counted below "
        "after the run)."
    )
    if st.button("Compute MNIST bits/dim", key="score_mnist_run"):
        bar, prog = _bar("ODE (Hutchinson) then ELBO ...")
        res = mnist_bpd(n_digits, probes, state.seed, _progress=prog)
        bar.empty()
        st.dataframe(
            [
                {"digit": i, "ODE bits/dim": a, "ELBO bits/dim": b}
                for i, (a, b) in enumerate(zip(res.ode_bpd, res.elbo_bpd))
            ],
            hide_index=True,
        )
        st.caption(
            f"Mean: ODE {res.ode_bpd.mean():.3f} bits/dim, ELBO {res.elbo_bpd.mean():.3f} bits/dim; "
            f"{res.nfe} function evaluations, {res.n_probes} probe(s). Look for: the two routes are "
            "two models (and two ways to discretize), so they need not agree; compare both with the "
            "published figures above."
        )
    show_source(lesson.mnist_bits_per_dim)


def try_this() -> None:
    st.header("Try this")
    for tip in lesson.TRY_THIS:
        explain(f"- {tip}")


def page() -> None:
    state = frame()
    shipped = (weights_present("gmm"), model_for("gmm"))  # cache key: new weights or the user's own model, new results
    introduction(state, shipped)
    ode_problem = lesson.ode_ready(build_schedule(state))
    t = noise_is_score(state, shipped)
    score_matching(state, shipped, t)
    langevin_dynamics(state, shipped)
    probability_flow(state, shipped, ode_problem)
    likelihood(state, shipped, ode_problem)
    digits_bits_per_dim(state)
    try_this()


page()
