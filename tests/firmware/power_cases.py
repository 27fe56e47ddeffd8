"""Power policy, energy model, LED policy and board files: CPython and real MicroPython."""

from cases import raises

from hugband import board, led, power


def case_battery_percent_curve():
    bp = power.battery_percent
    assert bp(4300) == 100 and bp(4200) == 100
    assert bp(3600) == 0 and bp(3000) == 0
    assert bp(3910) == 50
    assert 50 < bp(3930) < 60
    prev = 0
    for mv in range(3500, 4300, 5):
        assert bp(mv) >= prev, mv
        prev = bp(mv)


def case_battery_mv_from_adc():
    assert power.battery_mv(1950000, 2.0) == 3900
    assert power.battery_mv(2100000, 2) == 4200


def case_low_battery_warning_has_hysteresis():
    m = power.BatteryMonitor(low_pct=15)
    assert m.update(4000) is False and not m.low
    assert m.update(3810) is True and m.low  # ~12 %: warn once
    assert m.update(3800) is False and m.low  # still low, no second warning
    assert m.update(3838) is False and m.low and m.percent == 19  # above 15 % but below 20 %: still low
    assert m.update(3842) is False and not m.low and m.percent == 22  # >= 20 %: cleared
    assert m.update(3805) is True  # low again: warns again


def case_advertising_backs_off_and_kick_resets():
    b = power.AdvertisingBackoff(0)
    assert b.interval_ms == 100 and b.poll(10) is None
    assert b.poll(29999) is None
    assert b.poll(30000) == 500
    assert b.poll(60000) is None
    assert b.poll(120000) == 1285
    b.kick(200000)
    assert b.poll(200001) == 100
    assert b.poll(230000) == 500


def case_deep_sleep_only_when_unpaired_idle_and_alone():
    p = power.PowerPolicy(80, 0, idle_sleep_min=10)
    ten = 10 * 60000
    assert not p.should_deep_sleep(ten - 1, False, False)
    assert p.should_deep_sleep(ten, False, False)
    assert not p.should_deep_sleep(ten, True, False), "paired bands stay reachable"
    assert not p.should_deep_sleep(ten, False, True), "not while connected"
    assert not p.should_deep_sleep(ten, False, False, busy=True)
    p.activity(ten)
    assert not p.should_deep_sleep(ten + 1000, False, False)
    p.idle_sleep_min = 0
    assert not p.should_deep_sleep(10 * ten, False, False), "0 = never"
    assert p.cpu_mhz == 80  # the lowest clock at which the radio runs


def case_energy_meter_accumulates_per_state():
    m = power.EnergyMeter(0, 80)
    m.set_state(power.ADVERTISING, 0)
    m.set_state(power.CONNECTED, 60000)
    m.set_motor(True, 70000)
    m.set_motor(False, 71000)
    m.set_cpu(160, 90000)
    m.set_state(power.DEEP_SLEEP, 120000)
    m.update(3600000)
    r = m.report()
    assert r["advertising_ms"] == 60000 and r["connected_ms"] == 60000
    assert r["deep_sleep_ms"] == 3480000 and r["motor_ms"] == 1000
    assert m.cpu_ms == {80: 90000, 160: 30000}
    # 60 s x 14 mA + 60 s x 16 mA + 1 s x 60 mA + 30 s x 80 MHz x 60 uA + 3480 s x 45 uA
    expect_uah = (60 * 14000 + 60 * 16000 + 60000 + 30 * 80 * 60 + 3480 * 45) // 3600
    assert abs(r["charge_uah"] - expect_uah) <= 1, (r["charge_uah"], expect_uah)
    assert 0 < r["average_ua"] < 16000


def case_led_priorities_and_blinks():
    p = led.LedPolicy(0)
    p.paired = True
    assert p.colour_at(0) == led.OFF
    p.connected = True
    assert p.colour_at(10) == led.GREEN and p.colour_at(100) == led.OFF
    p.pairing = True
    assert p.colour_at(100) == led.BLUE and p.colour_at(300) == led.OFF and p.colour_at(500) == led.BLUE
    p.error(1000)
    assert p.colour_at(1000) == led.RED and p.colour_at(1150) == led.OFF
    assert p.colour_at(2200) == led.BLUE, "error flash over after 1.2 s"
    p.pairing = False
    p.low_battery = True
    assert p.colour_at(4000) == led.AMBER
    p.enabled = False
    assert p.colour_at(4000) == led.OFF
    assert p.poll(4000) is None  # unchanged from OFF
    p.enabled = True
    assert p.poll(4000) == led.AMBER and p.poll(4010) is None
    assert led.led_on(led.AMBER) and not led.led_on(led.OFF)


def case_boards_load_with_every_key():
    c3 = board.load("xiao_esp32c3")
    s3 = board.load("xiao_esp32s3")
    keys = (
        "name",
        "title",
        "mcu",
        "march",
        "button_pin",
        "button_active_low",
        "touch_pin",
        "touch_threshold",
        "motor_pin",
        "motor_driver",
        "pwm_freq",
        "i2c",
        "led_pin",
        "led_kind",
        "led_active_low",
        "battery_adc_pin",
        "battery_divider",
        "cpu_mhz",
        "wiring",
        "bom",
    )
    for b in (c3, s3, board.load("xiao_esp32s3_erm")):
        for k in keys:
            assert k in b, (b["name"], k)
        assert b["wiring"] and b["bom"]
    assert c3["mcu"] == "esp32c3" and c3["march"] == "rv32imc"
    assert c3["button_pin"] in (2, 3, 4, 5, 6, 7, 21, 20, 8, 9, 10) and c3["touch_pin"] is None
    assert c3["motor_driver"] == "erm_pwm" and c3["motor_pin"] is not None
    assert s3["march"] == "xtensawin" and 1 <= s3["touch_pin"] <= 14 and s3["button_pin"] is None
    assert s3["motor_driver"] == "drv2605l" and s3["i2c"]["sda"] == 5 and s3["touch_rises"]
    assert board.load()["name"] == board.DEFAULT


def case_board_errors_are_clear():
    e = raises(board.BoardError, board.load, "xiao_esp32c9")
    assert "unknown board" in str(e)
    raises(board.BoardError, board.load, "../secrets")
    no_title = {"name": "x", "mcu": "esp32c3", "march": "rv32imc", "motor_driver": "erm_pwm"}
    e = raises(board.BoardError, board.check, no_title)
    assert "title" in str(e)
    good = {
        "name": "x",
        "title": "t",
        "mcu": "esp32c3",
        "march": "rv32imc",
        "motor_driver": "erm_pwm",
        "button_pin": 3,
        "motor_pin": 4,
    }
    assert board.check(dict(good))["pwm_freq"] == 20000
    for change in (
        {"touch_pin": 1},
        {"button_pin": None},
        {"mcu": "esp8266"},
        {"march": "xtensawin"},
        {"motor_pin": None},
        {"motor_driver": "drv2605l"},
        {"led_kind": "pin"},
        {"cpu_mhz": 120},
        {"touch_threshold": 2},
        {"button_pin": 99},
    ):
        b = dict(good)
        b.update(change)
        raises(board.BoardError, board.check, b)
