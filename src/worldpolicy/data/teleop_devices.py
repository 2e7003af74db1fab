"""A gamepad or a 3Dconnexion SpaceMouse as `dataset teleop`'s input (`--input gamepad|spacemouse`).

MuJoCo's viewer still shows the scene (`ViewerInput`: its window, its keys, its pacing to the control rate); each
tick the device's reading moves the teleop target: its axes are rates (m/s, rad/s at full deflection:
`MAX_SPEED`, `MAX_TURN`, times `speed`), past a `deadzone`, integrated over the control period, the target kept in
`TARGET_BOX` (over the table, from its top up); a button pressed (its press, not its hold) is an event (`EVENTS`).
What a device's axes and buttons do is its `DeviceLayout` (`SPACEMOUSE`, `GAMEPAD`), applied by `DeviceMapping`.

Reading the device sits behind `DeviceReader` (`read()` → a `DeviceState`): `HidSpaceMouse` reads a SpaceMouse's HID
reports through hidapi (`import hid`), as robosuite reads them; `PygameGamepad` a gamepad through pygame's joystick
module (SDL), as LeRobot's gamepad teleoperator on Linux. Both come with the `teleop` extra, wheels that install
without a device present; a test feeds recorded states (`DeviceState`, or a SpaceMouse's raw reports to
`spacemouse_state`) in the reader's place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import is_real
from ..extras import extra_imports
from ..sim.scenes import TABLE_CENTER, TABLE_HALF, TABLE_TOP
from .teleop import EVENTS, ViewerInput

if TYPE_CHECKING:
    from worldpolicy.sim.env import TabletopEnv

__all__ = ["GAMEPAD", "INPUTS", "MAX_SPEED", "MAX_TURN", "SPACEMOUSE", "TARGET_BOX", "DeviceInput", "DeviceLayout",
           "DeviceMapping", "DeviceReader", "DeviceState", "DeviceUnavailable", "HidSpaceMouse", "PygameGamepad",
           "device_input", "spacemouse_state"]

# The target's speed and turn rate at a device's full deflection, with `speed` 1 (`--speed`). The IK step cap
# (`sim.policies.joint_step_cap`) holds the hand to the scripted expert's joint speeds whatever the target does.
MAX_SPEED = 0.15  # m/s
MAX_TURN = 1.0  # rad/s
DEADZONE = 0.1  # of full deflection: a stick or cap at rest reads a little off zero
# Where the target may go (world frame, metres, low and high corners): over the table top, from 1 cm above it to 60 cm
# (the reach balls go up to 35 cm, the hand starts at 40 cm). A point the arm cannot reach is left to IK, which stops
# the hand where it can go.
TARGET_BOX = (np.array([TABLE_CENTER[0] - TABLE_HALF[0], TABLE_CENTER[1] - TABLE_HALF[1], TABLE_TOP + 0.01]),
              np.array([TABLE_CENTER[0] + TABLE_HALF[0], TABLE_CENTER[1] + TABLE_HALF[1], TABLE_TOP + 0.6]))
# The motion components an axis drives: the target's velocity along the world's x (away from the robot's base), y
# (its left) and z (up), and its angular velocity about them
COMPONENTS = ("x", "y", "z", "roll", "pitch", "yaw")


class DeviceUnavailable(ValueError):
    """The device `--input` names cannot be used here: none is found, or it cannot be opened. (Its library missing is
    `extras.MissingExtraError`, naming the flag and the `teleop` extra.)"""


@dataclass(frozen=True)
class DeviceState:
    """One reading of a device: each axis in [-1, 1] (0 at rest) and whether each button is held, by index."""

    axes: tuple[float, ...]
    buttons: tuple[bool, ...] = ()


@dataclass(frozen=True)
class DeviceLayout:
    """What a device's axes and buttons do: `axes` index → (component of `COMPONENTS`, sign, what the person does);
    `buttons` index → (event of `EVENTS`, the button's name). `name` is the `--input` value and the provenance's
    `input`."""

    name: str
    axes: dict[int, tuple[str, float, str]]
    buttons: dict[int, tuple[str, str]]

    def __post_init__(self) -> None:
        for component, _, _ in self.axes.values():
            if component not in COMPONENTS:
                raise ValueError(f"axes: component {component!r}; accepted: {list(COMPONENTS)}")
        for event, _ in self.buttons.values():
            if event not in EVENTS:
                raise ValueError(f"buttons: event {event!r}; accepted: {list(EVENTS)}")

    def controls(self) -> str:
        """The layout in words, as the command says it when it starts."""
        moves = [f"{how}: {'+' if sign > 0 else '-'}{component}" for component, sign, how in self.axes.values()]
        presses = [f"{button}: {event}" for event, button in self.buttons.values()]
        return "; ".join(moves + presses)


# A SpaceMouse's six axes as its HID reports give them (`spacemouse_state`, the order robosuite reads): the cap moved
# right, toward you, down (0-2) and tilted about those directions (3-5). With the cable pointing away from you and you
# behind the robot, looking along +x: the cap moves the target as your hand moves it, and turns it as you turn it.
SPACEMOUSE = DeviceLayout(
    "spacemouse",
    axes={0: ("y", -1.0, "cap right/left"), 1: ("x", -1.0, "cap forward/back"), 2: ("z", -1.0, "cap up/down"),
          3: ("pitch", -1.0, "cap tilted forward/back"), 4: ("roll", -1.0, "cap tilted right/left"),
          5: ("yaw", -1.0, "cap twisted")},
    buttons={0: ("gripper", "left button"), 1: ("success", "right button")},
)
# A gamepad as SDL numbers an Xbox-layout pad on Linux (xpad; LeRobot's gamepad teleoperator reads the same): sticks
# read -1 up and left, +1 down and right
GAMEPAD = DeviceLayout(
    "gamepad",
    axes={0: ("y", -1.0, "left stick left/right"), 1: ("x", -1.0, "left stick up/down"),
          4: ("z", -1.0, "right stick up/down"), 3: ("yaw", -1.0, "right stick left/right")},
    buttons={5: ("gripper", "RB"), 3: ("success", "Y"), 1: ("failure", "B"), 2: ("discard", "X")},
)


def _turn(rates: np.ndarray) -> np.ndarray:
    """The rotation matrix of the rotation vector `rates` (axis times angle, radians): Rodrigues' formula."""
    angle = float(np.linalg.norm(rates))
    if angle < 1e-12:
        return np.eye(3)
    k = rates / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


@dataclass
class DeviceMapping:
    """A device's readings (`DeviceState`) → the target's motion and the events of a tick, as `layout` says: an
    axis past `deadzone` (rescaled so that full deflection is still 1) drives its component at up to `MAX_SPEED`
    m/s or `MAX_TURN` rad/s times `speed`; the target kept in `box` (low and high corners; None: anywhere); a button
    pressed since the last reading is its event (held, it is not again)."""

    layout: DeviceLayout
    speed: float = 1.0
    deadzone: float = DEADZONE
    box: tuple[np.ndarray, np.ndarray] | None = TARGET_BOX
    _held: tuple[bool, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        if not (is_real(self.speed) and self.speed > 0):
            raise ValueError(f"speed: expected a positive factor of the device's rates, got {self.speed!r}")
        if not (is_real(self.deadzone) and 0 <= self.deadzone < 1):
            raise ValueError(f"deadzone: expected a share of full deflection in [0, 1), got {self.deadzone!r}")

    def begin(self, state: DeviceState) -> None:
        """An episode starts: buttons held now (from the last episode's end) are not presses."""
        self._held = tuple(state.buttons)

    def rates(self, state: DeviceState) -> tuple[np.ndarray, np.ndarray]:
        """The target's velocity (m/s) and angular velocity (rad/s, about the world's axes) that `state` asks for."""
        needed = max(self.layout.axes) + 1
        if len(state.axes) < needed:
            raise ValueError(f"state: {len(state.axes)} axes read from the {self.layout.name}; its layout needs "
                             f"{needed}")
        drive = np.zeros(len(COMPONENTS))
        for index, (component, sign, _) in self.layout.axes.items():
            value = float(np.clip(state.axes[index], -1.0, 1.0))
            past = max(abs(value) - self.deadzone, 0.0) / (1.0 - self.deadzone)
            drive[COMPONENTS.index(component)] += sign * np.copysign(past, value)
        return drive[:3] * MAX_SPEED * self.speed, drive[3:] * MAX_TURN * self.speed

    def events(self, state: DeviceState) -> list[str]:
        """The events of the buttons pressed since the last reading, in the layout's order."""
        held = tuple(state.buttons)
        pressed = [event for index, (event, _) in self.layout.buttons.items()
                   if index < len(held) and held[index] and not (index < len(self._held) and self._held[index])]
        self._held = held
        return pressed

    def move(self, pose: np.ndarray, state: DeviceState, dt: float) -> np.ndarray:
        """`pose` (4x4, world frame) moved for `dt` seconds as `state` asks, kept in `box`."""
        velocity, turn = self.rates(state)
        moved = np.array(pose, dtype=np.float64)
        moved[:3, 3] = moved[:3, 3] + velocity * dt
        if self.box is not None:
            moved[:3, 3] = np.clip(moved[:3, 3], *self.box)
        moved[:3, :3] = _turn(turn * dt) @ moved[:3, :3]
        return moved


class DeviceReader(Protocol):
    """Reads a device (the seam tests feed recorded states through). `found` says what was opened."""

    found: str

    def read(self) -> DeviceState:
        """The device's state now (every report since the last read taken in)."""

    def close(self) -> None:
        """Let the device go."""


# 3Dconnexion's USB vendor id; its older devices (SpaceNavigator, SpaceExplorer, SpacePilot) use Logitech's
SPACEMOUSE_VENDORS = (0x256F, 0x046D)
SPACEMOUSE_FULL_SCALE = 350.0  # a report's axis value at full deflection (robosuite's scale)


def spacemouse_state(report: Sequence[int], last: DeviceState) -> DeviceState:
    """`last` updated by one SpaceMouse HID report (bytes): report 1 carries the translation (little-endian int16 at
    bytes 1-6) and, on current devices, the rotation (7-12); report 2 the rotation of older devices (1-6); report 3
    the buttons (a bit each in byte 1). Any other report (the battery's) changes nothing."""
    axes, buttons = list(last.axes) or [0.0] * 6, last.buttons or (False, False)

    def values(data: Sequence[int]) -> list[float]:
        raw = np.frombuffer(bytes(data), dtype="<i2").astype(np.float64)
        return list(np.clip(raw / SPACEMOUSE_FULL_SCALE, -1.0, 1.0))

    kind = report[0] if len(report) else None
    if kind == 1 and len(report) >= 7:
        axes[: (6 if len(report) >= 13 else 3)] = values(report[1:13] if len(report) >= 13 else report[1:7])
    elif kind == 2 and len(report) >= 7:
        axes[3:6] = values(report[1:7])
    elif kind == 3 and len(report) >= 2:
        buttons = tuple(bool(report[1] >> bit & 1) for bit in range(8))
    return DeviceState(tuple(axes), tuple(buttons))


class HidSpaceMouse:
    """The first 3Dconnexion SpaceMouse hidapi finds (`SPACEMOUSE_VENDORS`), read without blocking."""

    def __init__(self, hid: ModuleType | None = None):
        if hid is None:
            with extra_imports("--input spacemouse"):
                import hid
        every = hid.enumerate(0, 0)
        mice = [d for d in every if d.get("vendor_id") in SPACEMOUSE_VENDORS
                and (d.get("vendor_id") == 0x256F or "space" in str(d.get("product_string") or "").lower())]
        if not mice:
            seen = sorted({str(d.get("product_string") or f"{d.get('vendor_id', 0):04x}:{d.get('product_id', 0):04x}")
                           for d in every})
            raise DeviceUnavailable(f"--input spacemouse: no 3Dconnexion SpaceMouse found among the {len(every)} HID "
                                    f"devices hidapi sees ({', '.join(seen) or 'none'}); plug it in, and on Linux let "
                                    "your user read its /dev/hidraw* (a udev rule), or pick another --input")
        self.device = hid.device()
        try:
            self.device.open_path(mice[0]["path"])
        except OSError as exc:
            raise DeviceUnavailable(f"--input spacemouse: found {mice[0].get('product_string')!r} but could not open "
                                    f"it ({exc}): on Linux let your user read its /dev/hidraw* (a udev rule), and "
                                    "stop another program that holds it (spacenavd)") from None
        self.device.set_nonblocking(1)
        self.found = str(mice[0].get("product_string") or "a SpaceMouse")
        self.state = DeviceState((0.0,) * 6, (False, False))

    def read(self) -> DeviceState:
        while report := self.device.read(13):
            self.state = spacemouse_state(report, self.state)
        return self.state

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None


class PygameGamepad:
    """The first gamepad pygame's joystick module (SDL) finds. SDL's video runs on its "dummy" driver unless
    SDL_VIDEODRIVER says otherwise: no window of its own (MuJoCo's viewer shows the scene); its events carry the pad's
    state."""

    def __init__(self, pygame: ModuleType | None = None):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        if pygame is None:
            with extra_imports("--input gamepad"):
                import pygame
        self.pygame = pygame
        pygame.display.init()
        pygame.joystick.init()
        count = pygame.joystick.get_count()
        if not count:
            raise DeviceUnavailable("--input gamepad: no gamepad found (pygame sees 0 joysticks); plug one in (on "
                                    "Linux your user must read /dev/input/event*), or pick another --input")
        self.stick = pygame.joystick.Joystick(0)
        self.stick.init()
        self.found = f"{self.stick.get_name()} ({self.stick.get_numaxes()} axes, {self.stick.get_numbuttons()} buttons)"
        needed = max(GAMEPAD.axes) + 1
        if self.stick.get_numaxes() < needed:
            raise DeviceUnavailable(f"--input gamepad: {self.found} has fewer axes than the {needed} its layout reads "
                                    "(two sticks)")

    def read(self) -> DeviceState:
        self.pygame.event.pump()
        stick = self.stick
        return DeviceState(tuple(float(stick.get_axis(i)) for i in range(stick.get_numaxes())),
                           tuple(bool(stick.get_button(i)) for i in range(stick.get_numbuttons())))

    def close(self) -> None:
        self.pygame.joystick.quit()


class DeviceInput:
    """A `TeleopInput` driven by a device (`reader`, mapped by `mapping`), MuJoCo's viewer showing the scene
    (`viewer`, whose keys act too; None: no window, unpaced, as tests run). `name` is the layout's, `speed` the
    mapping's: both recorded in the provenance."""

    def __init__(self, mapping: DeviceMapping, reader: DeviceReader, viewer: ViewerInput | None = None,
                 say: Callable[[str], None] | None = None):
        self.mapping, self.reader, self.viewer = mapping, reader, viewer
        self.name, self.speed = mapping.layout.name, mapping.speed
        self.say = say or (viewer.say if viewer is not None else (lambda text: None))
        self._dt = 0.0

    def open(self, env: TabletopEnv) -> None:
        if self.viewer is not None:
            self.viewer.open(env)
        self._dt = 1.0 / env.control_hz
        self.say(f"teleop: {self.reader.found}: {self.mapping.layout.controls()}")

    def begin(self, env: TabletopEnv, seed: int, attempt: int) -> None:
        if self.viewer is not None:
            self.viewer.begin(env, seed, attempt)
        self.mapping.begin(self.reader.read())

    def tick(self, env: TabletopEnv) -> Sequence[str]:
        events = list(self.viewer.tick(env)) if self.viewer is not None else []
        if "quit" in events:
            return events
        state = self.reader.read()
        env.set_teleop_pose(self.mapping.move(env.teleop_pose(), state, self._dt))
        return events + self.mapping.events(state)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            if self.viewer is not None:
                self.viewer.close()


# `--input`'s values: a device's reader (opened: refuses at once where there is none) and layout
INPUTS: dict[str, tuple[Callable[[], DeviceReader], DeviceLayout] | None] = {
    "viewer": None, "spacemouse": (HidSpaceMouse, SPACEMOUSE), "gamepad": (PygameGamepad, GAMEPAD)}


def device_input(name: str, speed: float = 1.0, viewer: ViewerInput | None = None) -> DeviceInput:
    """`--input name`'s device, opened (`DeviceUnavailable` where it is missing, `extras.MissingExtraError` its
    library), moving the target at `speed` times its rates, shown in `viewer`."""
    if INPUTS.get(name) is None:
        raise ValueError(f"--input: {name!r} is not a device; accepted: {[k for k, v in INPUTS.items() if v]}")
    reader, layout = INPUTS[name]
    mapping = DeviceMapping(layout, speed=speed)  # a bad speed refused before the device opens
    return DeviceInput(mapping, reader(), viewer)
