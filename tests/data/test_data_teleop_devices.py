"""`dataset teleop --input spacemouse|gamepad`: a device's readings → the target's motion, the gripper and the
episode's end (`data.teleop_devices`), fed recorded device states in the device's place; the readers against
stand-ins for hidapi and pygame (no device here); the command's refusals; a recording driven by a gamepad."""

from __future__ import annotations

import re
import sys
import types
from functools import partial

import numpy as np
import pytest

from worldpolicy.data.teleop_devices import (
    GAMEPAD,
    MAX_SPEED,
    MAX_TURN,
    SPACEMOUSE,
    TARGET_BOX,
    DeviceInput,
    DeviceLayout,
    DeviceMapping,
    DeviceState,
    DeviceUnavailable,
    HidSpaceMouse,
    PygameGamepad,
    spacemouse_state,
)
from worldpolicy.extras import MissingExtraError


def _pad(lx=0.0, ly=0.0, rx=0.0, ry=0.0, pressed=()) -> DeviceState:
    """A gamepad reading (SDL's Xbox numbering: 6 axes, 11 buttons), `pressed` by button index."""
    return DeviceState((lx, ly, -1.0, rx, ry, -1.0), tuple(i in pressed for i in range(11)))


def test_the_deadzone_and_the_speed_shape_the_rates_in_physical_units():
    mapping = DeviceMapping(GAMEPAD, speed=1.0, deadzone=0.1)
    velocity, turn = mapping.rates(_pad(lx=0.08, ly=-0.09, ry=0.05, rx=-0.1))  # sticks at rest, a little off
    assert not velocity.any() and not turn.any()
    # full deflection: the layout's speed, signed as the layout says (stick up: away from the base, +x)
    velocity, turn = mapping.rates(_pad(ly=-1.0, lx=1.0, ry=-1.0, rx=1.0))
    np.testing.assert_allclose(velocity, [MAX_SPEED, -MAX_SPEED, MAX_SPEED])
    np.testing.assert_allclose(turn, [0.0, 0.0, -MAX_TURN])
    # past the deadzone the rate grows from 0: half way from it to full deflection is half the speed
    velocity, _ = mapping.rates(_pad(ly=-0.55))
    np.testing.assert_allclose(velocity, [MAX_SPEED / 2, 0.0, 0.0])
    # --speed scales translation and rotation alike; a reading past full deflection is full deflection
    velocity, turn = DeviceMapping(GAMEPAD, speed=2.0).rates(_pad(ly=-1.7, rx=-1.0))
    np.testing.assert_allclose(velocity, [2 * MAX_SPEED, 0.0, 0.0])
    np.testing.assert_allclose(turn, [0.0, 0.0, 2 * MAX_TURN])
    # a SpaceMouse's six axes: pushed away from you, the target goes away from the base; twisted, it turns
    velocity, turn = DeviceMapping(SPACEMOUSE).rates(DeviceState((0.0, -1.0, 0.0, 0.0, 0.0, -1.0)))
    np.testing.assert_allclose(velocity, [MAX_SPEED, 0.0, 0.0])
    np.testing.assert_allclose(turn, [0.0, 0.0, MAX_TURN])


def test_bad_settings_and_short_readings_are_refused_naming_them():
    with pytest.raises(ValueError, match="speed: expected a positive factor.*got 0"):
        DeviceMapping(GAMEPAD, speed=0)
    with pytest.raises(ValueError, match="deadzone: .*got 1"):
        DeviceMapping(GAMEPAD, deadzone=1)
    # a string or NaN is refused as a bad setting, naming it (a string failed in numpy's isfinite, as a TypeError)
    for bad in ("2", float("nan"), True):
        with pytest.raises(ValueError, match=f"speed: expected a positive factor.*got {re.escape(repr(bad))}"):
            DeviceMapping(GAMEPAD, speed=bad)
    with pytest.raises(ValueError, match="deadzone: .*got '0.1'"):
        DeviceMapping(GAMEPAD, deadzone="0.1")
    assert DeviceMapping(GAMEPAD, speed=np.float32(2.0), deadzone=np.float64(0.2)).speed == 2.0  # numpy's numbers
    with pytest.raises(ValueError, match="state: 2 axes read from the gamepad; its layout needs 5"):
        DeviceMapping(GAMEPAD).rates(DeviceState((0.0, 0.0)))
    with pytest.raises(ValueError, match="event 'jump'; accepted"):
        DeviceLayout("pad", axes={}, buttons={0: ("jump", "A")})
    with pytest.raises(ValueError, match="component 'w'; accepted"):
        DeviceLayout("pad", axes={0: ("w", 1.0, "stick")}, buttons={})


def test_the_target_moves_for_the_control_period_and_stays_in_the_box():
    mapping = DeviceMapping(GAMEPAD)
    start = np.eye(4)
    start[:3, 3] = [0.5, 0.0, 0.3]
    dt = 1 / 15
    moved = mapping.move(start, _pad(ly=-1.0, rx=-1.0), dt)
    np.testing.assert_allclose(moved[:3, 3], [0.5 + MAX_SPEED * dt, 0.0, 0.3])
    angle = MAX_TURN * dt  # about +z, the world's: x turns toward y
    np.testing.assert_allclose(moved[:3, 0], [np.cos(angle), np.sin(angle), 0.0], atol=1e-12)
    np.testing.assert_allclose(moved[:3, :3] @ moved[:3, :3].T, np.eye(3), atol=1e-12)
    # held down long enough, the target stops at the box's floor (over the table), not in it
    pose = start
    for _ in range(100):
        pose = mapping.move(pose, _pad(ry=1.0), dt)
    assert pose[2, 3] == pytest.approx(TARGET_BOX[0][2]) and pose[:2, 3].tolist() == [0.5, 0.0]
    assert DeviceMapping(GAMEPAD, box=None).move(start, _pad(ry=1.0), 10.0)[2, 3] < 0  # no box: anywhere


def test_a_press_is_one_event_and_a_button_held_into_an_episode_is_none():
    mapping = DeviceMapping(GAMEPAD)
    mapping.begin(_pad(pressed={5}))  # RB held as the episode starts (the last one's end): not a press
    said = [mapping.events(state) for state in (_pad(pressed={5}), _pad(), _pad(pressed={5}), _pad(pressed={5}),
                                                _pad(pressed={5, 3}), _pad(pressed={1, 2}))]
    assert said == [[], [], ["gripper"], [], ["success"], ["failure", "discard"]]


def test_spacemouse_reports_become_states():
    """Raw HID reports as hidapi gives them: 1 (translation, and rotation on current devices), 2 (an older device's
    rotation), 3 (the buttons); another (the battery's, 23) changes nothing."""
    def int16(*values):
        return [b for v in values for b in int(v).to_bytes(2, "little", signed=True)]

    state = spacemouse_state([1, *int16(350, -175, 0, 35, 0, -700)], DeviceState(()))
    np.testing.assert_allclose(state.axes, [1.0, -0.5, 0.0, 0.1, 0.0, -1.0])  # 350 is full deflection, past it too
    assert state.buttons == (False, False)
    older = spacemouse_state([2, *int16(0, 350, 0)], spacemouse_state([1, *int16(0, 0, 350)], state))
    np.testing.assert_allclose(older.axes, [0.0, 0.0, 1.0, 0.0, 1.0, 0.0])  # translation, then rotation
    pressed = spacemouse_state([3, 0b10], older)
    assert pressed.buttons[:2] == (False, True) and pressed.axes == older.axes
    assert spacemouse_state([23, 80], pressed) == pressed
    mapping = DeviceMapping(SPACEMOUSE)
    mapping.begin(state)
    assert mapping.events(pressed) == ["success"] and mapping.events(spacemouse_state([3, 1], pressed)) == ["gripper"]


class _Hid:
    """A stand-in for hidapi (`import hid`): `devices` enumerated, each opened device reading `reports`."""

    def __init__(self, devices, reports=()):
        self.devices, self.reports, self.closed = devices, list(reports), False

    def enumerate(self, vendor, product):
        return list(self.devices)

    def device(self):
        hid = self

        class Device:
            def open_path(self, path):
                hid.opened = path

            def set_nonblocking(self, on):
                pass

            def read(self, size):
                return hid.reports.pop(0) if hid.reports else []

            def close(self):
                hid.closed = True

        return Device()


def test_the_spacemouse_reader_finds_reads_and_refuses():
    keyboard = {"vendor_id": 0x046D, "product_id": 0xC31C, "product_string": "USB Keyboard", "path": b"k"}
    with pytest.raises(DeviceUnavailable, match=r"--input spacemouse: no 3Dconnexion SpaceMouse found among the 1 HID "
                       r"devices hidapi sees \(USB Keyboard\)"):
        HidSpaceMouse(_Hid([keyboard]))
    mouse = {"vendor_id": 0x256F, "product_id": 0xC635, "product_string": "SpaceMouse Compact", "path": b"m"}
    hid = _Hid([keyboard, mouse], reports=[[1, 94, 1, 0, 0, 0, 0], [3, 1]])  # x 350, then the left button
    reader = HidSpaceMouse(hid)
    assert hid.opened == b"m" and reader.found == "SpaceMouse Compact"
    state = reader.read()  # every report waiting taken in
    assert state.axes[0] == 1.0 and state.buttons[:2] == (True, False)
    assert reader.read() == state  # nothing new: as it was
    reader.close()
    reader.close()
    assert hid.closed


def test_a_missing_library_or_gamepad_is_one_line_naming_the_flag_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)  # as where hidapi is not installed
    with pytest.raises(MissingExtraError) as missing:
        HidSpaceMouse()
    # the distribution to install (hidapi), not the module that failed (hid)
    assert str(missing.value) == ("--input spacemouse: hidapi is not installed; it comes with the 'teleop' extra: "
                                  "pip install 'worldpolicy[teleop]'")
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(MissingExtraError) as missing:
        PygameGamepad()
    assert str(missing.value) == ("--input gamepad: pygame is not installed; it comes with the 'teleop' extra: "
                                  "pip install 'worldpolicy[teleop]'")
    pygame = types.SimpleNamespace(display=types.SimpleNamespace(init=lambda: None),
                                   joystick=types.SimpleNamespace(init=lambda: None, get_count=lambda: 0))
    with pytest.raises(DeviceUnavailable, match=r"--input gamepad: no gamepad found \(pygame sees 0 joysticks\)"):
        PygameGamepad(pygame)


def _pygame(axes, buttons):
    """A stand-in for pygame with one joystick reading `axes` and `buttons`; `pumped` counts its event pumps."""
    stick = types.SimpleNamespace(init=lambda: None, get_name=lambda: "Xbox Controller", get_numaxes=lambda: len(axes),
                                  get_numbuttons=lambda: len(buttons), get_axis=lambda i: axes[i],
                                  get_button=lambda i: buttons[i])
    pygame = types.SimpleNamespace(pumped=0, display=types.SimpleNamespace(init=lambda: None))
    pygame.event = types.SimpleNamespace(pump=lambda: setattr(pygame, "pumped", pygame.pumped + 1))
    pygame.joystick = types.SimpleNamespace(init=lambda: None, get_count=lambda: 1, Joystick=lambda i: stick,
                                            quit=lambda: None)
    return pygame


def test_the_gamepad_reader_reads_the_first_pad_after_pumping_its_events():
    pygame = _pygame([0.5, -1.0, -1.0, 0.0, 0.25, -1.0], [0, 1, 0])
    reader = PygameGamepad(pygame)
    assert reader.found == "Xbox Controller (6 axes, 3 buttons)"
    assert reader.read() == DeviceState((0.5, -1.0, -1.0, 0.0, 0.25, -1.0), (False, True, False))
    assert pygame.pumped == 1  # SDL updates a joystick's state as its events are pumped
    with pytest.raises(DeviceUnavailable, match=r"--input gamepad: Xbox Controller \(2 axes, 3 buttons\) has fewer "
                       "axes than the 5 its layout reads"):
        PygameGamepad(_pygame([0.0, 0.0], [0, 0, 0]))


class _Recorded:
    """Recorded device states in a reader's place: one a read, the last held."""

    found = "a recorded gamepad"

    def __init__(self, states):
        self.states, self.closed = list(states), 0

    def read(self):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def close(self):
        self.closed += 1


def _needs_sim() -> None:
    pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
    pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")


def test_a_gamepad_drives_a_recorded_episode(tmp_path):
    """Recorded pad states through the real mapping and the teleop loop: the stick moves the target (so the hand),
    RB toggles the gripper from the tick it is pressed on, Y ends the episode as a success."""
    _needs_sim()
    from worldpolicy.data.from_sim import ACTION_KEYS, sim_to_dataset
    from worldpolicy.data.teleop import ScriptedInput, teleop_episodes

    # read at the episode's start (begin), then once a tick: 6 ticks of the stick up, RB pressed on the 3rd, Y on the
    # 7th, which ends the episode before its step: 6 rows
    states = [_pad(), *[_pad(ly=-1.0, pressed={5} if t == 2 else ()) for t in range(6)], _pad(pressed={3})]
    poses, said = [], []
    source = DeviceInput(DeviceMapping(GAMEPAD), _Recorded(states), say=said.append)
    tick = source.tick

    def watched(env):
        events = tick(env)
        poses.append(env.teleop_pose()[:3, 3].copy())
        return events

    source.tick = watched
    result = sim_to_dataset(tmp_path / "pad", "reach", 1, seed=3, image_size=(32, 32),
                            recorder=partial(teleop_episodes, source=source))
    episode = result.dataset.episode(0)
    assert said == ["teleop: a recorded gamepad: " + GAMEPAD.controls()] and source.reader.closed
    steps = np.diff(np.array(poses), axis=0)  # the target's motion each tick: MAX_SPEED along +x
    np.testing.assert_allclose(steps[:5], [[MAX_SPEED / 15, 0.0, 0.0]] * 5, atol=1e-9)
    assert episode.length == 6 and result.dataset.episode_success.tolist() == [True]
    assert episode.frames[ACTION_KEYS[1]][:, 0].tolist() == [0, 0, 1, 1, 1, 1]
    assert result.dataset.provenance["input"] == "gamepad" and result.dataset.provenance["speed"] == 1.0
    # another input does not continue it: the recording's input is one of its settings
    with pytest.raises(ValueError, match="resume: .*input"):
        sim_to_dataset(tmp_path / "pad", "reach", 2, seed=3, image_size=(32, 32), resume=True,
                       recorder=partial(teleop_episodes, source=ScriptedInput(lambda env, attempt, tick: ["success"])))
    # nor another speed: the hand's pace at full deflection is one too
    slower = DeviceInput(DeviceMapping(GAMEPAD, speed=0.5), _Recorded([_pad(pressed={3})]))
    with pytest.raises(ValueError, match="resume: .*speed") as refused:
        sim_to_dataset(tmp_path / "pad", "reach", 2, seed=3, image_size=(32, 32), resume=True,
                       recorder=partial(teleop_episodes, source=slower))
    assert "input" not in str(refused.value)


def _cli_flags(root):
    return ["dataset", "teleop", str(root), "--task", "reach", "--episodes", "1", "--image-size", "32x32"]


def test_the_command_refuses_a_missing_device_before_any_work(tmp_path, monkeypatch, capsys):
    _needs_sim()  # the command checks the sim and train extras first
    from worldpolicy.cli import main

    monkeypatch.setitem(sys.modules, "pygame", None)
    monkeypatch.delenv("DISPLAY", raising=False)  # the device is said first: it is what --input asked for
    root = tmp_path / "tele"
    assert main([*_cli_flags(root), "--input", "gamepad"]) == 2
    err = capsys.readouterr().err
    assert ("worldpolicy dataset teleop: error: --input gamepad: pygame is not installed; it comes with the 'teleop' "
            "extra: pip install 'worldpolicy[teleop]'") in err
    assert len(err.strip().splitlines()) == 1 and not root.exists()
    assert main([*_cli_flags(root), "--speed", "2"]) == 2  # the viewer has no rates
    assert "error: --speed=2: sets a device's rates; with --input viewer" in capsys.readouterr().err
    assert main([*_cli_flags(root), "--input", "gamepad", "--speed", "-1"]) == 2  # named as the flag, not speed=
    assert "error: --speed: expected a positive factor of the device's rates, got -1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main([*_cli_flags(root), "--input", "joystick"])
    assert "--input: invalid choice: 'joystick' (choose from 'viewer', 'spacemouse', 'gamepad')" in (
        capsys.readouterr().err)
    from worldpolicy.data.teleop_devices import INPUTS

    assert list(INPUTS) == ["viewer", "spacemouse", "gamepad"]  # the parser's choices (it imports no sim module)
    assert not root.exists()


def test_the_command_records_with_a_device_and_names_itself(tmp_path, monkeypatch, capsys):
    """The device opened before the display is checked (refused: the device let go), then a recording whose
    provenance names the input and the flags; messages from the recording name `dataset teleop`."""
    _needs_sim()
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset, teleop, teleop_devices
    from worldpolicy.fileio import PROVENANCE_FILE, dataset_lock_file

    readers = []

    def reader():
        readers.append(_Recorded([_pad(), *[_pad(ly=-1.0)] * 3, _pad(pressed={3})]))
        return readers[-1]

    monkeypatch.setitem(teleop_devices.INPUTS, "gamepad", (reader, GAMEPAD))
    root = tmp_path / "tele"
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main([*_cli_flags(root), "--input", "gamepad", "--speed", "0.5"]) == 2
    assert "DISPLAY" in capsys.readouterr().err and readers[-1].closed and not root.exists()

    locked = []

    class Headless(teleop.ScriptedInput):  # the viewer's place: no window; the lock read while recording
        say = staticmethod(lambda text: None)

        def __init__(self):
            super().__init__(lambda env, attempt, tick: locked.append(dataset_lock_file(root).read_text()) or [])

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(teleop, "ViewerInput", Headless)
    assert main([*_cli_flags(root), "--input", "gamepad", "--speed", "0.5"]) == 0
    made = LeRobotDataset.open(root)
    assert made.provenance["input"] == "gamepad" and made.episode_lengths.tolist() == [3]
    assert made.provenance["speed"] == 0.5  # as the command line says it, for a reader reproducing the dataset
    assert "--input gamepad --speed 0.5" in made.provenance["command"] and readers[-1].closed
    assert locked and locked[0].splitlines()[1] == "`dataset teleop`"  # who holds the folder, as another is told

    # a folder another command made: named as not this command's recording
    provenance = root / PROVENANCE_FILE
    provenance.write_text(provenance.read_text().replace("worldpolicy dataset from-sim", "worldpolicy dataset merge"))
    assert main([*_cli_flags(root), "--input", "gamepad", "--overwrite"]) == 2
    assert ("holds a dataset `dataset merge` made, not a `dataset teleop` recording; choose a new or empty folder "
            "(--overwrite replaces only a `dataset teleop` recording that says so)") in capsys.readouterr().err
