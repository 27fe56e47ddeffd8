"""The phone side of the simulated world: what a phone's BLE stack looks like to bleak.

- :mod:`hugsim.phone.bleak_backend`: a bleak backend (``backend=``) that reaches the airspace.
- :mod:`hugsim.phone.bluez`: a simulated ``org.bluez`` on a private dbus-daemon, for bleak's own
  BlueZ backend.
"""
