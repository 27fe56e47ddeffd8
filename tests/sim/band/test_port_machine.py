"""The sim port's machine/neopixel/esp32 modules against the World (no firmware thread)."""

import asyncio
import threading
import time

import pytest

from hugsim.band import runtime
from hugsim.band.runner import sim_port

C3 = {
    "name": "t_c3",
    "mcu": "esp32c3",
    "button_pin": 3,
    "button_active_low": True,
    "motor_pin": 4,
    "led_pin": 5,
    "led_kind": "pin",
    "battery_adc_pin": 2,
    "battery_divider": 2.0,
}
S3_DRV = {
    "name": "t_s3",
    "mcu": "esp32s3",
    "touch_pin": 1,
    "motor_driver": "drv2605l",
    "i2c": {"id": 0, "sda": 5, "scl": 6},
    "led_pin": 21,
    "led_kind": "neopixel",
}


@pytest.fixture
def c3(tmp_path):
    with sim_port(C3, tmp_path, address="C0:FF:EE:00:00:10") as band:
        yield band


@pytest.fixture
def s3(tmp_path):
    with sim_port(S3_DRV, tmp_path) as band:
        yield band


def test_button_reads_the_pull_up_when_released_and_low_when_pressed(c3):
    from machine import Pin

    raw = Pin(3, Pin.IN)
    assert raw.value() == 0  # floating, no pull: a firmware that forgets PULL_UP sees "pressed"
    b = Pin(3, Pin.IN, Pin.PULL_UP)
    assert b.value() == 1
    c3.world.press()
    assert b.value() == 0
    assert b() == 0
    c3.world.release()
    assert b.value() == 1
    assert Pin(3) is b  # esp32 pins are static objects


def test_soft_irq_runs_in_the_firmware_thread_on_edges_it_asked_for(c3):
    from machine import Pin

    seen = []
    b = Pin(3, Pin.IN, Pin.PULL_UP)
    b.irq(lambda p: seen.append((p, p.irq().flags(), threading.get_ident())), Pin.IRQ_FALLING)
    presser = threading.Thread(target=c3.world.press)
    presser.start()
    presser.join()
    assert seen == []  # soft IRQ: queued, not run in the pressing thread
    time.sleep_ms(5)  # the firmware thread gets to run scheduled handlers
    assert seen == [(b, Pin.IRQ_FALLING, threading.get_ident())]
    c3.world.release()  # rising edge: not asked for
    time.sleep_ms(5)
    assert len(seen) == 1


def test_hard_irq_runs_in_the_thread_that_changed_the_level(c3):
    from machine import Pin

    seen = []
    b = Pin(3, Pin.IN, Pin.PULL_UP)
    b.irq(lambda p: seen.append(threading.get_ident()), Pin.IRQ_FALLING | Pin.IRQ_RISING, hard=True)
    presser = threading.Thread(target=lambda: (c3.world.press(), c3.world.release()))
    presser.start()
    presser.join()
    assert seen == [presser.ident, presser.ident]
    b.irq(None)
    c3.world.press()
    assert len(seen) == 2


def test_irq_wakes_an_asyncio_firmware_via_threadsafeflag(c3):
    from machine import Pin

    async def run():
        flag = asyncio.ThreadSafeFlag()
        b = Pin(3, Pin.IN, Pin.PULL_UP)
        b.irq(lambda p: flag.set(), Pin.IRQ_FALLING)
        threading.Timer(0.05, c3.world.press).start()
        await asyncio.wait_for_ms(flag.wait(), 2000)
        return b.value()

    assert asyncio.run(run()) == 0


def test_pwm_duty_lands_on_the_motor_timeline(c3):
    from machine import PWM, Pin

    pwm = PWM(Pin(4), freq=200, duty_u16=0)
    pwm.duty_u16(32768)
    assert pwm.duty_u16() == 32768
    assert pwm.freq() == 200
    pwm.duty_ns(1_000_000)  # 1 ms of a 5 ms period = 20 %
    assert abs(pwm.duty_u16() - 13107) <= 1
    pwm.deinit()
    motor = [v for _, v in c3.world.outputs("motor")]
    assert motor[0] == 0.0
    assert motor[1] == pytest.approx(0.5, abs=1e-3)
    assert motor[2] == pytest.approx(0.2, abs=1e-3)
    assert motor[-1] == 0.0
    assert c3.world.current("motor") == 0.0


def test_pwm_without_duty_starts_at_the_esp32_default_half_duty(c3):
    from machine import PWM, Pin

    PWM(Pin(4))
    assert c3.world.current("motor") == pytest.approx(0.5, abs=1e-3)


def test_led_pin_and_plain_gpio_outputs(c3):
    from machine import Pin, Signal

    led = Pin(5, Pin.OUT, value=0)
    led.on()
    led.off()
    other = Signal(Pin(7, Pin.OUT), invert=True)
    other.on()
    assert [v for _, v in c3.world.outputs("led")] == [0, 1, 0]
    assert c3.world.outputs("gpio")[-1][1] == (7, 0)


def test_adc_reads_the_battery_through_the_divider_within_the_attenuation_range(c3):
    from machine import ADC, Pin

    c3.world.battery_v = 4.0
    adc = ADC(Pin(2))
    assert adc.read_uv() == 750_000  # C3 default 0 dB range clips at 750 mV
    adc.atten(ADC.ATTN_11DB)
    assert adc.read_uv() == 2_000_000
    assert adc.read_u16() == round(2000 / 2500 * 65535)
    c3.world.battery_v = 3.3
    assert adc.read_uv() == 1_650_000
    with pytest.raises(ValueError, match="invalid pin"):
        ADC(Pin(10))


def test_c3_has_no_touchpad_and_input_validation(c3):
    import machine

    assert not hasattr(machine, "TouchPad")
    with pytest.raises(ValueError, match="invalid pin"):
        machine.Pin(30)
    with pytest.raises(ValueError, match="frequency must be"):
        machine.freq(240_000_000)
    machine.freq(80_000_000)
    assert machine.freq() == 80_000_000
    assert c3.world.current("cpu_hz") == 80_000_000


def test_unique_id_is_the_base_mac_of_the_ble_address(c3):
    import machine

    assert machine.unique_id() == bytes.fromhex("C0FFEE00000E")


def test_touchpad_rises_on_s3_when_touched(s3):
    from machine import Pin, TouchPad

    t = TouchPad(Pin(1))
    idle = t.read()
    s3.world.set_touch(True)
    assert t.read() > idle * 1.1
    with pytest.raises(ValueError, match="invalid pin for touchpad"):
        TouchPad(Pin(20))


def test_touchpad_drops_on_the_original_esp32(tmp_path):
    with sim_port({"name": "classic", "mcu": "esp32", "touch_pin": 4}, tmp_path) as band:
        from machine import Pin, TouchPad

        t = TouchPad(Pin(4))
        idle = t.read()
        band.world.set_touch(True)
        assert t.read() < idle


def test_drv2605l_on_the_board_bus_records_rtp_and_library_playback(s3):
    from machine import I2C, Pin

    wrong = I2C(0, scl=Pin(9), sda=Pin(8))
    assert wrong.scan() == []
    with pytest.raises(OSError, match="19"):
        wrong.writeto_mem(0x5A, 0x01, b"\x00")
    i2c = I2C(0, scl=Pin(6), sda=Pin(5))
    assert i2c.scan() == [0x5A]
    assert i2c.readfrom_mem(0x5A, 0x00, 1)[0] >> 5 == 7  # DRV2605L device id
    i2c.writeto_mem(0x5A, 0x01, b"\x05")  # out of standby, RTP mode
    i2c.writeto_mem(0x5A, 0x02, b"\x7f")  # full scale (signed)
    assert s3.world.current("motor") == pytest.approx(1.0)
    i2c.writeto(0x5A, b"\x02\x00")  # register-pointer form
    assert s3.world.current("motor") == 0.0
    i2c.writeto_mem(0x5A, 0x01, b"\x00")  # internal trigger
    i2c.writeto_mem(0x5A, 0x04, bytes([47, 47, 0]))  # two effects then end
    i2c.writeto_mem(0x5A, 0x0C, b"\x01")  # GO
    assert s3.world.outputs("haptic")[-1][1]["effects"] == [47, 47]
    assert i2c.readfrom_mem(0x5A, 0x0C, 1) == b"\x01"  # still playing
    time.sleep_ms(250)
    assert i2c.readfrom_mem(0x5A, 0x0C, 1) == b"\x00"  # GO self-clears when done


def test_neopixel_write_latches_the_led_colour(s3):
    from machine import Pin
    from neopixel import NeoPixel

    np = NeoPixel(Pin(21), 1)
    np[0] = (255, 0, 40)
    assert s3.world.current("led") is None  # nothing until write()
    np.write()
    assert s3.world.current("led") == (255, 0, 40)
    assert np[0] == (255, 0, 40)
    assert np.buf == bytearray([0, 255, 40])  # GRB on the wire


def test_deepsleep_and_reset_end_the_boot(c3):
    import machine

    with pytest.raises(runtime.Reboot):
        machine.deepsleep(100)
    with pytest.raises(runtime.Reboot):
        machine.reset()
    assert machine.reset_cause() == machine.PWRON_RESET


def test_lightsleep_returns_on_timer_or_wake_pin(c3):
    import esp32
    import machine

    t0 = time.monotonic()
    machine.lightsleep(50)
    assert 0.045 <= time.monotonic() - t0 < 1.0
    esp32.wake_on_gpio((machine.Pin(3, machine.Pin.IN, machine.Pin.PULL_UP),), 0)
    threading.Timer(0.05, c3.world.press).start()
    t0 = time.monotonic()
    machine.lightsleep(5000)
    assert time.monotonic() - t0 < 2.0
    assert [v for _, v in c3.world.outputs("power")][-2:] == ["lightsleep", "active"]


def test_nvs_persists_only_what_was_committed(c3, tmp_path):
    import esp32

    nvs = esp32.NVS("hug")
    nvs.set_i32("seq", 41)
    nvs.set_blob("key", b"\x01\x02\x03")
    with pytest.raises(OSError, match="NOT_FOUND"):
        esp32.NVS("hug").get_i32("seq")  # not committed yet
    nvs.commit()
    buf = bytearray(8)
    again = esp32.NVS("hug")
    assert again.get_i32("seq") == 41
    assert again.get_blob("key", buf) == 3
    assert buf[:3] == b"\x01\x02\x03"
    assert (tmp_path / ".hugsim" / "nvs.json").exists()


def test_timer_callbacks_are_scheduled(c3):
    from machine import Timer

    hits = []
    t = Timer(0)
    t.init(mode=Timer.PERIODIC, period=10, callback=lambda tm: hits.append(threading.get_ident()))
    time.sleep_ms(60)
    t.deinit()
    n = len(hits)
    assert n >= 3
    assert set(hits) == {threading.get_ident()}
    time.sleep_ms(30)
    assert len(hits) == n
