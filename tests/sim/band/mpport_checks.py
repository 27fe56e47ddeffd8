"""The virtual band's board modules (sim/hugsim/band/mp: machine, bluetooth, esp32, neopixel) on the
real MicroPython unix port, without an airspace: what the firmware sees and what reaches the air.

Run by tests/sim/test_mp_port.py (``cases.main`` in a `micropython` process); every ``case_*`` starts
from a fresh board. Messages the band would send are captured instead (``simlink.send``).
"""

import bluetooth
import esp32
import machine
import neopixel
import simlink
from cases import raises

C3 = {
    "name": "xiao_esp32c3",
    "mcu": "esp32c3",
    "button_pin": 3,
    "button_active_low": True,
    "motor_pin": 4,
    "motor_driver": "erm_pwm",
    "led_pin": 5,
    "led_kind": "pin",
    "led_active_low": False,
    "battery_adc_pin": 2,
    "battery_divider": 2.0,
}
S3 = {
    "name": "xiao_esp32s3",
    "mcu": "esp32s3",
    "button_pin": None,
    "touch_pin": 1,
    "motor_driver": "drv2605l",
    "led_pin": 21,
    "led_kind": "neopixel",
    "battery_adc_pin": 2,
    "battery_divider": 2.0,
}
SENT = []


def _send(msg):
    SENT.append(msg)


def fresh(board):
    """A band just powered on, with its radio captured."""
    simlink.board = dict(board)
    simlink.address = "C0:FF:EE:00:00:10"
    simlink.addr_bytes = bytes.fromhex("c0ffee000010")
    for d in (simlink.ext, simlink.pin_mode, simlink.pin_pull, simlink.pin_out, simlink.watchers):
        d.clear()
    simlink._last.clear()
    simlink._current.clear()
    simlink.wake.clear()
    simlink.connections.clear()
    simlink.lose.clear()
    simlink.store.clear()
    simlink.touched = False
    simlink._resetting = 0
    simlink.battery_v = 3.9
    simlink.send = _send
    simlink.drv_reset()
    bluetooth.BLE._instance = None
    del SENT[:]


def activate(ble):
    """active(True), and the airspace confirming the fresh stack (link events before are stale)."""
    ble.active(True)
    simlink._handle({"ev": "reset_done"})


def outputs(kind):
    return [m["value"] for m in SENT if m.get("op") == "output" and m["kind"] == kind]


def case_button_reads_its_pull_up_when_released_and_low_when_pressed():
    fresh(C3)
    pin = machine.Pin(3, machine.Pin.IN, machine.Pin.PULL_UP)
    assert pin.value() == 1
    simlink.set_button(True)
    assert pin.value() == 0
    simlink.set_button(False)
    assert pin.value() == 1
    floating = machine.Pin(6, machine.Pin.IN)
    assert floating.value() == 0


def case_a_hard_irq_runs_at_the_edge_on_the_edges_asked_for():
    fresh(C3)
    pin = machine.Pin(3, machine.Pin.IN, machine.Pin.PULL_UP)
    seen = []
    pin.irq(lambda p: seen.append(p.value()), machine.Pin.IRQ_FALLING, hard=True)
    simlink.set_button(True)
    assert seen == [0]  # already ran, before anything else
    simlink.set_button(False)
    assert seen == [0]  # a rising edge was not asked for


def case_a_soft_irq_is_scheduled():
    fresh(C3)
    pin = machine.Pin(3, machine.Pin.IN, machine.Pin.PULL_UP)
    seen = []
    pin.irq(lambda p: seen.append(p.value()), machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
    simlink.set_button(True)
    simlink.set_button(False)
    for _ in range(3):  # the scheduler runs between bytecodes
        pass
    assert seen == [0, 1] or seen == [1, 1], seen


def case_pwm_on_the_motor_pin_is_the_motor_intensity():
    fresh(C3)
    pwm = machine.PWM(machine.Pin(4), freq=20000, duty_u16=0)
    pwm.duty_u16(32768)
    pwm.duty_u16(32768)  # unchanged: not recorded again
    pwm.duty_u16(0)
    assert outputs("motor") == [0.0, 32768 / 65535, 0.0]
    assert pwm.freq() == 20000


def case_the_led_pin_and_other_gpios_are_outputs():
    fresh(C3)
    led = machine.Pin(5, machine.Pin.OUT, value=0)
    led.value(1)
    other = machine.Pin(7, machine.Pin.OUT)
    other.on()
    assert outputs("led") == [0, 1]
    assert outputs("gpio") == [[7, 0], [7, 1]]


def case_the_adc_reads_the_battery_through_the_divider():
    fresh(C3)
    adc = machine.ADC(machine.Pin(2), atten=machine.ADC.ATTN_11DB)
    assert adc.read_uv() == 1_950_000
    simlink.battery_v = 6.0  # 3 V at the pin: beyond the 11 dB range
    assert adc.read_uv() == 2_450_000


def case_unique_id_is_the_base_mac_below_the_ble_address():
    fresh(C3)
    assert machine.unique_id() == bytes.fromhex("c0ffee00000e")


def case_the_c3_has_no_touch_and_pins_are_checked():
    fresh(C3)
    raises(ValueError, machine.TouchPad, machine.Pin(4))
    raises(ValueError, machine.Pin, 99)
    raises(ValueError, machine.Pin, 3, 42)
    raises(ValueError, machine.freq, 240_000_000)  # the C3 tops out at 160 MHz
    machine.freq(80_000_000)
    assert machine.freq() == 80_000_000
    assert outputs("cpu_hz") == [80_000_000]


def case_an_s3_touch_pad_rises_when_touched():
    fresh(S3)
    pad = machine.TouchPad(machine.Pin(1))
    idle = pad.read()
    simlink.apply_input("touch", 1)
    assert pad.read() > idle * 1.1
    simlink.apply_input("touch", 0)
    assert pad.read() == idle


def case_the_drv2605l_plays_in_real_time():
    fresh(S3)
    i2c = machine.I2C(0, sda=machine.Pin(5), scl=machine.Pin(6))
    assert i2c.scan() == [0x5A]
    assert i2c.readfrom_mem(0x5A, 0x00, 1) == b"\xe0"  # the device id
    i2c.writeto_mem(0x5A, 0x01, b"\x05")  # real-time playback
    i2c.writeto_mem(0x5A, 0x02, b"\x7f")
    i2c.writeto_mem(0x5A, 0x02, b"\x00")
    assert outputs("motor")[-2:] == [1.0, 0.0]
    raises(OSError, i2c.writeto_mem, 0x40, 0, b"\x00")


def case_a_neopixel_write_latches_the_led_colour():
    fresh(S3)
    np = neopixel.NeoPixel(machine.Pin(21), 1)
    np[0] = (255, 0, 10)
    assert outputs("led") == []  # not before write()
    np.write()
    assert outputs("led") == [[255, 0, 10]]


def case_reset_and_deepsleep_end_the_process_with_their_codes():
    fresh(C3)
    esp32.wake_on_gpio((machine.Pin(3),), esp32.WAKEUP_ALL_LOW)
    assert simlink.wake == {"gpio": ([3], 0)}
    raises(ValueError, esp32.wake_on_ext0, machine.Pin(3), 0)  # no ext0 on the C3
    e = raises(SystemExit, machine.reset)
    assert e.args[0] == machine.EXIT_RESET
    e = raises(SystemExit, machine.deepsleep, 500)
    assert e.args[0] == machine.EXIT_DEEPSLEEP


def case_the_watchdog_has_a_one_second_minimum():
    fresh(C3)
    wdt = machine.WDT(timeout=10)
    assert wdt._timeout == 1000
    wdt.feed()


def case_uuids_as_micropython_has_them():
    short = bluetooth.UUID(0x180F)
    assert short == bluetooth.UUID(b"\x0f\x18")  # 16-bit, little-endian
    assert short.text() == "0000180f-0000-1000-8000-00805f9b34fb"
    text = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
    long = bluetooth.UUID(text.upper())
    assert long.text() == text
    assert long == bluetooth.UUID(bytes(reversed(bytes.fromhex(text.replace("-", "")))))
    assert long != short
    raises(ValueError, bluetooth.UUID, "1234")


def _services():
    return (
        (
            bluetooth.UUID(0x1234),
            (
                (bluetooth.UUID(0x0001), bluetooth.FLAG_READ | bluetooth.FLAG_NOTIFY),
                (bluetooth.UUID(0x0002), bluetooth.FLAG_WRITE),
            ),
        ),
        (bluetooth.UUID(0x180F), ((bluetooth.UUID(0x2A19), bluetooth.FLAG_READ),)),
    )


def case_the_gatt_table_gets_nimble_handles_and_errors():
    fresh(C3)
    ble = bluetooth.BLE()
    assert ble is bluetooth.BLE()
    e = raises(OSError, ble.gatts_register_services, _services())
    assert e.args[0] == 1  # EPERM before active(True)
    ble.active(True)
    handles = ble.gatts_register_services(_services())
    assert handles == ((12, 15), (18,))  # after NimBLE's 1..9; a CCCD follows a NOTIFY value
    gatt = [m for m in SENT if m["op"] == "gatt"]
    table = gatt[0]["services"]
    assert table[0]["characteristics"][0]["descriptors"][0]["handle"] == 13  # the CCCD
    ble.gatts_write(12, b"hello")
    assert ble.gatts_read(12) == b"hello"
    raises(OSError, ble.gatts_write, 99, b"x")
    e = raises(OSError, ble.gatts_notify, 0, 12, b"x")
    assert e.args[0] == 107  # ENOTCONN
    ble.gap_advertise(100_000, b"\x02\x01\x06")
    adv = [m for m in SENT if m["op"] == "advertise"][-1]
    assert adv["interval_us"] == 100_000
    assert adv["adv"] == "020106"
    e = raises(OSError, ble.gatts_register_services, _services())
    assert e.args[0] == 16  # EBUSY while advertising
    raises(OSError, ble.gap_scan, 1000)


def case_private_addresses_are_fresh_on_every_call_and_refused_while_advertising():
    fresh(C3)
    ble = bluetooth.BLE()
    activate(ble)
    assert ble.config("mac") == (0, bytes.fromhex("c0ffee000010"))  # the public address at first
    seen = []
    for mode, top in ((3, 0x00), (3, 0x00), (1, 0xC0)):
        ble.config(addr_mode=mode)
        kind, addr = ble.config("mac")
        assert kind == 1
        assert len(addr) == 6
        assert addr[0] & 0xC0 == top
        sent = [m for m in SENT if m["op"] == "set_address"][-1]
        assert sent["address"] == ":".join("%02X" % b for b in addr)
        assert sent["addr_type"] == 1
        seen.append(addr)
    assert len(set(seen)) == 3
    ble.gap_advertise(100_000, b"\x02\x01\x06")
    e = raises(OSError, ble.config, addr_mode=3)
    assert e.args[0] == 16  # EBUSY: the controller keeps its address while advertising
    assert ble.config("mac")[1] == seen[-1]
    ble.gap_advertise(None)
    assert raises(OSError, ble.config, addr_mode=2).args[0] == 95  # RPA: not modelled
    ble.active(False)
    activate(ble)
    assert ble.config("mac") == (0, bytes.fromhex("c0ffee000010"))  # a fresh stack: public again


def case_remote_writes_append_and_a_read_consumes_them():
    fresh(C3)
    ble = bluetooth.BLE()
    activate(ble)
    h_write = ble.gatts_register_services(_services())[0][1]
    ble.gatts_set_buffer(h_write, 8, True)
    simlink._handle({"ev": "write", "conn": 0, "handle": h_write, "value": "0102"})
    simlink._handle({"ev": "write", "conn": 0, "handle": h_write, "value": "030405060708090a"})
    assert ble.gatts_read(h_write) == bytes(range(1, 9))  # cut to the buffer
    assert ble.gatts_read(h_write) == b""
    simlink._handle({"ev": "read", "req": 5, "handle": h_write})
    assert SENT[-1] == {"op": "read_rsp", "req": 5, "value": ""}


def case_irqs_are_scheduled_in_order_with_an_address_valid_only_inside():
    fresh(C3)
    ble = bluetooth.BLE()
    seen = []
    kept = []

    def irq(event, data):
        seen.append((event, data[0]))
        if event == 1:
            kept.append(data[2])

    ble.irq(irq)
    activate(ble)
    ble.gatts_register_services(_services())
    addr = "aabbccddeeff"
    simlink._handle({"ev": "connect", "conn": 3, "addr_type": 0, "addr": addr})
    simlink._handle({"ev": "write", "conn": 3, "handle": 15, "value": "01"})
    simlink._handle({"ev": "disconnect", "conn": 3, "addr_type": 0, "addr": addr, "reason": 19})
    assert simlink.connections == {}
    for _ in range(3):  # the scheduled drain runs between bytecodes
        pass
    assert seen == [(1, 3), (3, 3), (2, 3)]
    assert bytes(kept[0]) == bytes(6)  # zeroed when the handler returned


def case_a_full_irq_ring_drops_events():
    fresh(C3)
    ble = bluetooth.BLE()
    ble.config(rxbuf=20)
    ble.irq(lambda e, d: None)
    ble.active(True)
    ble._scheduled = True  # the loop is stalled: nothing drains
    for _ in range(6):
        ble._on_event("write", {"conn": 0, "handle": 15})
    assert ble.dropped == 2  # 4 writes of 5 bytes fit in 20


def case_a_lost_irq_leaves_the_stack_right():
    fresh(C3)
    ble = bluetooth.BLE()
    seen = []
    ble.irq(lambda event, data: seen.append((event, data[0])))
    activate(ble)
    ble.gatts_register_services(_services())
    addr = "aabbccddeeff"
    simlink._handle({"ev": "lose_irq", "event": "disconnect", "n": 1})  # the airspace's lose_irq
    simlink._handle({"ev": "connect", "conn": 3, "addr_type": 0, "addr": addr})
    simlink._handle({"ev": "disconnect", "conn": 3, "addr_type": 0, "addr": addr, "reason": 19})
    for _ in range(3):  # the scheduled drain runs between bytecodes
        pass
    assert seen == [(1, 3)], seen  # the disconnect IRQ never came
    assert ble.dropped == 1
    assert simlink.connections == {}  # but the stack knows the link is gone
    assert raises(OSError, ble.gatts_notify, 3, 15, b"x").args[0] == 107  # ENOTCONN
    assert ble.gap_disconnect(3) is False


def case_frames_go_out_of_one_buffer_not_the_firmwares_heap():
    import gc
    import json

    fresh(C3)
    table = {
        "op": "gatts_register",
        "services": [[str(i) * 36, [["%036d" % j, 26] for j in range(8)]] for i in range(4)],
    }
    plain = simlink._frame(table)
    assert 1400 < len(plain) < 2048, len(plain)  # like the band's GATT table
    gc.collect()
    before = gc.mem_alloc()
    framed = simlink._tx.frame(table)
    grew = gc.mem_alloc() - before
    assert bytes(framed) == plain
    simlink._tx.busy = False
    assert grew < len(plain) // 2, grew  # small pieces only: no block of the frame's size
    odd = {"op": "output", "kind": "x", "value": ["é", None, True, 1.5, -3]}
    assert bytes(simlink._tx.frame(odd)) == simlink._frame(odd)
    assert simlink._tx.frame(odd) is None  # still busy (a send from an IRQ meanwhile): allocate instead
    simlink._tx.busy = False
    assert simlink._tx.frame({"v": "x" * 3000}) is None  # bigger than the buffer: allocate instead
    assert not simlink._tx.busy
    assert json.loads(bytes(simlink._tx.frame(odd))[4:]) == odd
    simlink._tx.busy = False
