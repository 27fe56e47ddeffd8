"""The band's GATT layout, defined once for the firmware and the app.

Hug service (custom, 128-bit):
  event   notify + read   band -> phone frames (AuthOk, Press, Felt, Status, BandPub)
  command write           phone -> band frames (Auth, PairPub, PairConfirm, Play, Ack, ...)
  state   read + notify   the State frame: connection nonce, paired / pairing-window flags
Standard services: Battery (0x180F / 0x2A19) and Device Information (0x180A).
"""

HUG_SERVICE_UUID = "9b1d0001-6c4a-4e8b-8f4e-2d7a1b3c5e01"
EVENT_CHAR_UUID = "9b1d0002-6c4a-4e8b-8f4e-2d7a1b3c5e01"
COMMAND_CHAR_UUID = "9b1d0003-6c4a-4e8b-8f4e-2d7a1b3c5e01"
STATE_CHAR_UUID = "9b1d0004-6c4a-4e8b-8f4e-2d7a1b3c5e01"

BATTERY_SERVICE_UUID = 0x180F
BATTERY_LEVEL_UUID = 0x2A19
DEVICE_INFO_SERVICE_UUID = 0x180A
MANUFACTURER_NAME_UUID = 0x2A29
MODEL_NUMBER_UUID = 0x2A24
FIRMWARE_REVISION_UUID = 0x2A26
CCCD_UUID = 0x2902

MANUFACTURER_NAME = "Hug Button"


def uuid16_str(uuid16: int) -> str:
    """The Bluetooth base-UUID string form of a 16-bit UUID, as bleak reports it."""
    return "0000%04x-0000-1000-8000-00805f9b34fb" % uuid16
