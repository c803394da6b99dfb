"""Lesson 8 page — the training lab. Thin: widgets, a background job (course.jobs) read by a polling
fragment, figures from lessons.training_lab. Streamlit calls from the job's thread would be dropped, so
the thread only writes plain attributes and `job_panel` (an st.fragment) reads them every POLL_S seconds."""

import streamlit as st
import torch

from course import chart, device, explain, frame, mnist, points_2d, session_lab, show_source, url_choice, url_int
from course.jobs import TrainingJob, model_label
from lessons import training_lab as lesson
from lessons.elbo_lesson import hybrid_text
from lessons.settings import FrameState, build_schedule, device_label
from toy_models.training import Trainer

POLL_S = 1.0  # seconds between two looks at a running job
N_PREVIEW = 1000  # points in the preview figure
N_BACKDROP = 300  # data points behind each snapshot


@st.cache_data(max_entries=16)
def preview_x0(data: str):
    """The first N_PREVIEW points of the training set (seed 0, as the recipe draws them)."""
    return points_2d(data, N_PREVIEW, 0).numpy()


# --- the page: one function per section --------------------------------------------------------------
def the_recipe(state: FrameState) -> lesson.LabChoice:
    """The recipe's widgets: data, objective, steps, the network, learning rate, snapshots."""
    s = build_schedule(state)
    c = st.columns(3)
    data = url_choice(
        "lab_data",
        "training data",
        lesson.DATA_OPTIONS,
        state.data,
        key="lab_data",
        widget=c[0].selectbox,
        format_func=lambda d: lesson.DATA_LABELS.get(d, d),
    )
    objective = url_choice(
        "lab_objective",
        "objective",
        lesson.OBJECTIVES,
        "simple",
        key="lab_objective",
        widget=c[1].selectbox,
        format_func=lesson.OBJECTIVE_LABELS.get,
    )
    steps = url_choice("lab_steps", "training steps", lesson.STEPS, 1000, key="lab_steps", widget=c[2].select_slider)
    width, depth, lr, every = the_network()
    st.caption(f"Schedule: the sidebar's, **{s.describe()}** (change it there).")
    if objective == "hybrid":
        st.caption(hybrid_text(s, where=f"the sidebar's schedule ({s.describe()})"))
    return lesson.LabChoice(
        data=data,
        width=int(width),
        depth=int(depth),
        objective=objective,
        steps=int(steps),
        lr=float(lr),
        snapshot_every=int(every),
        seed=int(state.seed),
    )


def the_network():
    """(width, depth, learning rate, snapshot every): the second row of the recipe."""
    c = st.columns(4)
    width = url_choice(
        "lab_width",
        "network width",
        lesson.WIDTHS,
        32,
        key="lab_width",
        widget=c[0].select_slider,
        help="2D: the MLP's hidden width. MNIST: the U-Net's first channels.",
    )
    depth = url_choice(
        "lab_depth",
        "network depth",
        lesson.DEPTHS,
        2,
        key="lab_depth",
        widget=c[1].select_slider,
        help="2D: residual blocks. MNIST: resolution levels (28, 14, 7), at most 3.",
    )
    lr = url_choice(
        "lab_lr",
        "learning rate",
        lesson.LRS,
        3e-3,
        key="lab_lr",
        widget=c[2].select_slider,
        format_func=lambda v: f"{v:g}",
    )
    every = url_choice(
        "lab_every", "snapshot every N steps", lesson.SNAPSHOT_EVERY, 100, key="lab_every", widget=c[3].select_slider
    )
    return width, depth, lr, every


def your_points(state: FrameState):
    """The points drawn or uploaded (data "own"), or None while there are none."""
    st.subheader("Your points")
    tab_draw, tab_csv = st.tabs(["draw (lasso on the grid)", "upload a CSV"])
    with tab_draw:
        draw_points(state)
    with tab_csv:
        upload_points()
    if "lab_points" not in st.session_state:
        return None
    points, source = st.session_state["lab_points"]
    st.caption(
        f"{len(points):,} points ({source}), centred and divided by one scale so the average "
        "variance per coordinate is 1 (the shape keeps its aspect ratio)."
    )
    return points


def draw_points(state: FrameState) -> None:
    event = chart(
        lesson.fig_candidate_grid(lesson.candidate_grid()),
        key="lab_draw",
        on_select="rerun",
        selection_mode=("lasso", "box"),
    )
    picked = lesson.selected_indices(event.selection) if event is not None else []
    if picked and picked != st.session_state.get("lab_picked"):
        pts, msg = lesson.points_from_selection(picked, seed=state.seed)
        if msg:
            st.warning(msg, icon=":material/gesture:")
        else:
            st.session_state["lab_picked"] = picked
            st.session_state["lab_points"] = (
                pts,
                f"drawn: {len(picked)} grid points, {lesson.JITTER_PER_POINT} jittered points each",
            )
    st.caption("Each selected grid point becomes 20 points spread over its grid cell.")


def upload_points() -> None:
    up = st.file_uploader(
        "CSV with two numbers (x, y) per line; one header line allowed; at most 1 MB",
        type=["csv", "txt"],
        key="lab_csv",
    )
    if up is not None:
        pts, msg = lesson.parse_points_csv(up.getvalue())
        if msg:
            st.error(f"{up.name}: {msg}", icon=":material/error:")
        elif st.session_state.get("lab_csv_id") != up.file_id:
            st.session_state["lab_csv_id"] = up.file_id
            st.session_state["lab_points"] = (pts, f"uploaded: {up.name}")


def what_it_sees(state: FrameState, data: str, points) -> None:
    """The training data, noised to the preview t."""
    s = build_schedule(state)
    st.subheader("What it will be trained on")
    t_prev = url_int("lab_t", "preview t (the noise level the network sees)", 0, s.T, max(1, s.T // 10), key="lab_t")
    abar = float(s.alphas_cumprod[t_prev])
    if data == "mnist":
        x0 = mnist().x_train[:16]
        chart(
            lesson.fig_snapshot_digits(
                lesson.noised_preview(x0, s, t_prev, state.seed),
                None,
                f"Training digits at t = {t_prev} (ᾱ_t = {abar:.3g})",
            ),
            key="lab_preview",
        )
    elif data == "own" and points is None:
        st.info("No points yet: lasso some grid points or upload a CSV.", icon=":material/info:")
    else:
        x0 = points if data == "own" else preview_x0(data)
        chart(
            lesson.fig_training_preview(
                x0[:N_PREVIEW], lesson.noised_preview(x0[:N_PREVIEW], s, t_prev, state.seed), t_prev, abar
            ),
            key="lab_preview",
        )


def start(lab, recipe, points, every: int) -> None:
    """The Train button's callback (a callback, so the click survives the frame's first-visit rerun)."""
    if not lab.active():
        data_t = None if points is None else torch.as_tensor(points)
        lab.submit(TrainingJob(recipe, data=data_t, device=device(), snapshot_every=every, label=recipe.description))


def train_button(state: FrameState, lab, choice: lesson.LabChoice, points) -> bool:
    """The recipe in words and the Train button; True while this session's job is busy."""
    recipe, problem = lesson.build_recipe(choice, build_schedule(state), None if points is None else len(points))
    busy = lab.active()
    if problem:
        st.warning(problem, icon=":material/block:")
    else:
        st.caption(
            f"{recipe.description} Batch {recipe.batch_size}, warm-up {recipe.lr_warmup} steps then cosine decay, "
            f"EMA {recipe.ema_decay}; device here: {device_label(device())}. The time left is measured once it "
            "runs."
        )
    st.button(
        "Train",
        type="primary",
        icon=":material/play_arrow:",
        key="lab_train",
        disabled=bool(problem) or busy,
        on_click=start,
        args=(lab, recipe, points if choice.data == "own" else None, choice.snapshot_every),
        help="One job per session at a time; the server runs a few at once and queues the rest.",
    )
    return busy


# --- the job, polled ----------------------------------------------------------------------------------------
def job_panel(lab):
    job = lab.latest()
    if job is None:
        st.info("No training yet: choose the settings above and press **Train**.", icon=":material/info:")
        return
    v = job.view()
    ended_unseen = v.finished and st.session_state.get("lab_seen_end") != v.id
    if ended_unseen or tuple(lab.models.keys()) != st.session_state.get("_frame_models_shown", ()):
        st.session_state["lab_seen_end"] = v.id if v.finished else None
        st.rerun()  # the job ended: a full run stops this polling and shows a new model in the sidebar
    job_status(lab, job, v)
    if v.step == 0:
        return
    c1, c2 = st.columns([3, 2])
    chart(lesson.fig_loss_curve(v.losses, v.objective), key="lab_loss", where=c1)
    chart(lesson.fig_bucket_losses(v.bucket_losses, v.T, v.objective), key="lab_buckets", where=c2)
    last = v.losses[-min(50, v.losses.size) :].mean()
    st.caption(f"Mean loss of the last 50 steps: {last:.4g} (first 50: {v.losses[:50].mean():.4g}).")
    if v.snapshots and v.is_2d:
        own = job.data is not None
        backdrop = (job.data.numpy() if own else preview_x0(job.recipe.data))[:N_BACKDROP]
        chart(lesson.fig_snapshots_2d(v.snapshots, backdrop), key="lab_snaps")
    elif v.snapshots:
        step, samples = v.snapshots[-1]
        chart(lesson.fig_snapshot_digits(samples, step), key="lab_snaps")


def job_status(lab, job, v) -> None:
    """The job's progress bar, its place in the queue, its failure and notes, and the Stop button."""
    eta = (
        f", about {(v.steps - v.step) * v.seconds_per_step:,.0f} s left"
        if v.seconds_per_step and not v.finished
        else ""
    )
    st.progress(
        v.step / max(v.steps, 1),
        text=f"job {v.id}: **{v.status}** — step {v.step:,} of {v.steps:,}, "
        f"{v.wall_time_s:,.1f} s{eta}; device **{v.device or '—'}**",
    )
    if v.status == "queued":
        running, waiting = lab.queue.counts()
        st.info(
            f"Waiting for a free training slot: **place {v.queue_position} in the queue** ({running} of "
            f"{lab.queue.max_running} slots busy on this server, {waiting} waiting).",
            icon=":material/schedule:",
        )
    if v.status == "failed":
        st.error(f"The job failed: {v.error} The rest of the app is unaffected.", icon=":material/error:")
    for note in v.notes:
        st.info(note, icon=":material/info:")
    if not v.finished:
        st.button("Stop", key="lab_stop", icon=":material/stop:", on_click=job.stop)


def training(lab, busy: bool) -> None:
    latest = lab.latest()
    if latest is not None and latest.finished:  # this full run shows the end: the fragment need not rerun the app
        st.session_state["lab_seen_end"] = latest.id
    st.subheader("Training")
    st.fragment(job_panel, run_every=POLL_S if busy else None)(lab)


def your_models(lab) -> None:
    """The session's trained models: download or remove each."""
    keys = lab.models.keys()
    if not keys:
        return
    st.subheader("Your models (this session)")
    st.markdown(
        "Choose one in the sidebar's **model** box: the lessons that use a shipped 2D model trained on "
        "the same data (reverse chain, ELBO, score) then use yours. They are freed when this session ends."
    )
    for key in keys:
        c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="center")
        c1.markdown(f"**{model_label(lab.models.get(key))}**")
        c2.download_button(
            "Download checkpoint (.zip)",
            data=lambda k=key: lab.checkpoint_zip(k),
            file_name=f"{key.replace(':', '-')}.zip",
            mime="application/zip",
            on_click="ignore",
            key=f"lab_dl_{key}",
            icon=":material/download:",
        )
        c3.button("Remove", key=f"lab_rm_{key}", on_click=lab.remove_model, args=(key,))
    st.caption(
        "The zip holds NAME.safetensors and NAME.json: `toy_models.checkpoints.load_checkpoint('path/NAME')` loads it."
    )


def what_you_are_looking_at() -> None:
    st.subheader("What you are looking at")
    explain(lesson.WHAT_YOU_SEE)
    st.markdown("**Try this:**\n" + "\n".join(f"- {tip}" for tip in lesson.TRY_THIS))
    show_source(Trainer.step, lesson.build_recipe)


def page() -> None:
    state = frame()
    lab = session_lab()
    st.title("8 · Training lab")
    explain(lesson.INTRO)
    choice = the_recipe(state)
    points = your_points(state) if choice.data == "own" else None
    what_it_sees(state, choice.data, points)
    busy = train_button(state, lab, choice, points)
    training(lab, busy)
    your_models(lab)
    what_you_are_looking_at()


page()
