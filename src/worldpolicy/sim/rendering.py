"""Headless OpenGL backend choice for MuJoCo offscreen rendering.

MuJoCo binds its GL context class from `MUJOCO_GL` when first imported, so the choice happens in `worldpolicy.sim`'s
import: an explicit `MUJOCO_GL` wins; otherwise EGL if `libEGL` is present, else OSMesa if `libOSMesa` is. Renderer creation failures
are re-raised with what to install instead of PyOpenGL's bare traceback, and so is a `MUJOCO_GL=egl|osmesa` whose library
does not load (`require_gl_library`, before `import mujoco` fails on it with an AttributeError).
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import sys

__all__ = ["RenderingUnavailable", "check_offscreen", "gl_backend_said", "make_renderer", "require_gl_library",
           "select_gl_backend"]

HEADLESS = ("egl", "osmesa")
LIBRARIES = {"egl": ("EGL", "libegl1 libgl1-mesa-dri"), "osmesa": ("OSMesa", "libosmesa6")}  # backend: library, apt
INSTALL_HINT = (
    "install Mesa's EGL (`apt-get install -y libegl1 libgl1-mesa-dri`) or OSMesa (`apt-get install -y libosmesa6`), "
    "or set MUJOCO_GL=egl|osmesa|glfw explicitly"
)


class RenderingUnavailable(RuntimeError):
    """No offscreen OpenGL context could be created."""


_selected: str | None = None  # the backend `select_gl_backend` set MUJOCO_GL to itself (None: given, or none found)


def select_gl_backend() -> str | None:
    """Set `MUJOCO_GL` (if unset and MuJoCo not yet imported) to the first headless backend whose library exists."""
    global _selected
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen.lower()
    if "OpenGL" in sys.modules:
        return None  # PyOpenGL's platform is fixed already; make_renderer explains if the default context fails
    for backend, lib in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(lib):
            os.environ["MUJOCO_GL"] = backend
            _selected = backend
            if backend == "osmesa":
                os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
            module = sys.modules.get("mujoco.rendering.classic.gl_context")
            if module is not None:
                # MuJoCo was imported first (e.g. by user code): its context class was bound from the old MUJOCO_GL.
                # No OpenGL context exists yet, so re-binding it is safe; the Renderer looks it up at creation.
                importlib.reload(module)
            return backend
    return None


def gl_backend_said() -> str:
    """MUJOCO_GL as `worldpolicy env` reports it: its value and who set it (the user, or `select_gl_backend` from
    the library it found), or what MuJoCo falls back to where it is unset."""
    backend = os.environ.get("MUJOCO_GL")
    if not backend:
        return "unset: neither libEGL nor libOSMesa found, so MuJoCo uses glfw, which needs a display"
    if backend == _selected:
        return f"{backend} (unset, chosen by worldpolicy: lib{LIBRARIES[backend][0]} found)"
    return f"{backend} (set)"


def _loads(library: str) -> bool:
    """Whether PyOpenGL will load `library`: it tries lib<name>.so, then .so.9 down to .so.0 (LD_LIBRARY_PATH too)."""
    for name in (f"lib{library}.so", *(f"lib{library}.so.{i}" for i in range(9, -1, -1))):
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def require_gl_library() -> None:
    """Raise `RenderingUnavailable` saying what to install when MUJOCO_GL names egl or osmesa and its library does not
    load: `import mujoco` would fail on it (osmesa: "'NoneType' object has no attribute 'glGetError'"). Nothing to
    check for other backends, when PYOPENGL_PLATFORM names another one (mujoco then skips loading it), or once mujoco
    is imported."""
    backend = os.environ.get("MUJOCO_GL", "").strip().lower()
    platform = os.environ.get("PYOPENGL_PLATFORM", backend).strip().lower()
    if backend not in LIBRARIES or platform != backend or "mujoco" in sys.modules:
        return
    library, packages = LIBRARIES[backend]
    if not _loads(library):
        raise RenderingUnavailable(
            f"MUJOCO_GL={backend} but lib{library} is not installed: `apt-get install -y {packages}`, or unset "
            f"MUJOCO_GL to use whichever of {' and '.join(HEADLESS)} is installed"
        )


def make_renderer(model, height: int, width: int):
    """`mujoco.Renderer` with a clear error when no offscreen context works."""
    import mujoco

    if height > model.vis.global_.offheight or width > model.vis.global_.offwidth:
        raise ValueError(
            f"image_size: {height}x{width} exceeds the scene's offscreen buffer "
            f"{model.vis.global_.offheight}x{model.vis.global_.offwidth}"
        )
    try:
        return mujoco.Renderer(model, height, width)
    except Exception as exc:  # PyOpenGL / EGL / OSMesa raise a zoo of types
        backend = os.environ.get("MUJOCO_GL", "<unset: glfw, needs a display>")
        raise RenderingUnavailable(
            f"offscreen rendering failed with MUJOCO_GL={backend} ({type(exc).__name__}: {exc}); {INSTALL_HINT}. "
            "Note MUJOCO_GL must be set before mujoco is first imported."
        ) from exc


def check_offscreen() -> None:
    """Open an offscreen context as a scene's renderer does and render one small frame (`worldpolicy env`'s check,
    run in a process of its own: a driver may hang or crash). RenderingUnavailable saying what to install where
    none opens."""
    require_gl_library()
    import mujoco

    model = mujoco.MjModel.from_xml_string("<mujoco/>")
    renderer = make_renderer(model, 8, 8)
    try:
        renderer.update_scene(mujoco.MjData(model))
        renderer.render()
    finally:
        renderer.close()
