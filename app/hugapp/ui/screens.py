"""The six screens (Kivy): each copies its part of the controller's snapshot into its Kivy properties
(``show``) and rebuilds its lists when they change. Their layouts are the ``.kv`` files of the same
names; taps call the controller through :func:`view_of`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from hugapp.core import linking
from hugapp.ui.controller import Snapshot

from kivy.app import App  # isort: skip
from kivy.core.image import Image as CoreImage  # isort: skip
from kivy.factory import Factory  # isort: skip
from kivy.properties import (  # isort: skip
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.screenmanager import Screen  # isort: skip

if TYPE_CHECKING:
    from hugapp.ui.app import HugView


def make(kind: str, **props: Any) -> Any:
    """A widget of a kv dynamic class with its properties set (they exist only after kv applied)."""
    widget = Factory.get(kind)()
    for name, value in props.items():
        setattr(widget, name, value)
    return widget


def png_texture(png: bytes) -> Any:
    """A Kivy texture of a PNG (a QR code: drawn with sharp modules when scaled)."""
    texture: Any = CoreImage(io.BytesIO(png), ext="png").texture
    texture.mag_filter = "nearest"
    return texture


def view_of(widget: Any) -> HugView:
    """The :class:`HugView` a widget belongs to (kv handlers call ``view_of(self).controller...``):
    the nearest ancestor, or a popup, with a ``hug_view``; else the running app's view."""
    from hugapp.ui.app import HugView  # the app module imports this one

    w, depth = widget, 0
    while w is not None and depth < 64:  # the Window is its own parent
        view = getattr(w, "hug_view", None)
        if isinstance(view, HugView):
            return view
        w, depth = w.parent, depth + 1
    view = getattr(App.get_running_app(), "view", None)
    if not isinstance(view, HugView):
        raise LookupError(f"{widget} is not inside a companion's screens")
    return view


class HomeScreen(Screen):
    me = StringProperty("")
    members = ListProperty([])
    hug_back_from = StringProperty("")
    bands_summary = StringProperty("")

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        self.me = snap.me
        self.members = members
        self.hug_back_from = snap.home.hug_back_from
        bands = [b for b in snap.bands.bands if b.wearer == "you"]  # the others' on their cards
        battery = [f", battery {b.battery}%" if b.battery is not None else "" for b in bands]
        if not snap.bands.bands:
            self.bands_summary = "No band paired — pair one on the Bands screen"
        elif not bands:
            self.bands_summary = ""
        elif all(b.connected for b in bands):
            self.bands_summary = ", ".join(
                f"{b.name} connected{x}" for b, x in zip(bands, battery, strict=True)
            )
        else:
            self.bands_summary = ", ".join(
                f"{b.name}: {b.state}{x}" for b, x in zip(bands, battery, strict=True)
            )

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.members_box
        box.clear_widgets()
        for m in members:
            box.add_widget(make("MemberCard", **m))
        if not members:
            box.add_widget(
                Factory.HintLabel(text="No one in your circle yet — link a phone on the Link screen")
            )


class BandsScreen(Screen):
    bands = ListProperty([])
    found = ListProperty([])
    scanning = BooleanProperty(False)
    scan_progress = NumericProperty(0.0)
    pairing = StringProperty("")
    countdown = NumericProperty(0)
    pair_message = StringProperty("")

    def show(self, snap: Snapshot, _members: list[dict[str, Any]]) -> None:
        view = snap.bands
        self.bands = [
            {
                "band_id": b.band_id,
                "name": b.name,
                "state": b.state,
                "connected": b.connected,
                "battery_text": f"battery {b.battery}%" + (" — low" if b.low_battery else "")
                if b.battery is not None
                else "battery unknown",
                "last_seen": b.last_seen,
                "wearer": b.wearer,
                "co_owners": b.co_owners,
                "at_school": b.at_school,
            }
            for b in view.bands
        ]
        self.found = [
            {
                "address": f.address,
                "name": f.name,
                "signal": f"{'|' * f.bars}{'.' * (4 - f.bars)}  {f.rssi} dBm",
                "status": f.status,
                "can_pair": not f.paired_here,
                "busy": bool(view.pairing),
            }
            for f in view.found
        ]
        self.scanning = view.scanning
        self.scan_progress = view.scan_progress
        self.pairing = view.pairing
        self.countdown = view.pair_countdown
        self.pair_message = view.pair_message

    def on_bands(self, _w: Any, bands: list[dict[str, Any]]) -> None:
        box = self.ids.bands_box
        box.clear_widgets()
        for b in bands:
            box.add_widget(make("PairedBandRow", **b))
        if not bands:
            box.add_widget(make("HintLabel", text="No band paired yet — tap Find bands"))

    def on_found(self, _w: Any, found: list[dict[str, Any]]) -> None:
        box = self.ids.found_box
        box.clear_widgets()
        for f in found:
            box.add_widget(make("FoundBandRow", **f))

    def rename(self, band_id: str, name: str) -> None:
        popup = make("RenamePopup", band_id=band_id, band_name=name, hug_view=view_of(self))
        popup.open()

    def whose(self, address: str, name: str) -> None:
        """Pairing asks whose band it is: yours, someone's without a phone, or a new such person."""
        view = view_of(self)
        popup = make("WhosePopup", address=address, band_name=name, hug_view=view)
        for w in view.controller.bands.wearers():

            def chosen(_button: Any, member_id: str = w.member_id) -> None:
                view.controller.bands.pair(address, name, wearer=member_id)
                popup.dismiss()

            button = make("HugButton", text=f"{w.name} band")
            button.bind(on_release=chosen)
            popup.ids.choices_box.add_widget(button)
        popup.open()

    def at_school(self, band_id: str, name: str, enrolled: bool) -> None:
        """At school: type the code the classroom hub shows, or stop the hub serving the band."""
        popup = make(
            "SchoolPopup", band_id=band_id, band_name=name, enrolled=enrolled, hug_view=view_of(self)
        )
        popup.open()

    def share(self, band_id: str) -> None:
        """Let another companion of the circle (the home gateway) co-own a band: pick which."""
        view = view_of(self)
        popup = make("SharePopup", hug_view=view)
        companions = view.controller.bands.co_owner_choices(band_id)
        for member_id, who in companions:

            def chosen(_button: Any, member_id: str = member_id) -> None:
                view.controller.bands.share(band_id, member_id)
                popup.dismiss()

            button = make("HugButton", text=who)
            button.bind(on_release=chosen)
            popup.ids.choices_box.add_widget(button)
        if not companions:
            popup.ids.choices_box.add_widget(make("HintLabel", text="Link the home gateway first"))
        popup.open()


class LinkScreen(Screen):
    code = StringProperty("")
    expires_in = NumericProperty(0)
    message = StringProperty("")
    members = ListProperty([])
    qr_texture = ObjectProperty(None, allownone=True)

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        self.code = snap.link.code
        self.expires_in = snap.link.expires_in
        self.message = snap.link.message
        self.members = members

    def on_code(self, _w: Any, code: str) -> None:
        if not code:
            self.qr_texture = None
            return
        self.qr_texture = png_texture(linking.qr_png(code, scale=8))

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.circle_box
        box.clear_widgets()
        for m in members:
            box.add_widget(make("CircleRow", name=m["name"], status=m["status"], initial=m["initial"]))
        if not members:
            box.add_widget(make("HintLabel", text="Your circle is just you so far"))


class HistoryScreen(Screen):
    rows = ListProperty([])
    chart = ListProperty([])

    def show(self, snap: Snapshot, _members: list[dict[str, Any]]) -> None:
        self.rows = [
            {"when": r.when, "text": r.text, "receipt": r.receipt, "direction": r.direction}
            for r in snap.history.rows
        ]
        self.chart = [{"day": d, "sent": s, "received": r} for d, s, r in snap.history.chart]

    def on_rows(self, _w: Any, rows: list[dict[str, Any]]) -> None:
        self.ids.timeline.data = rows

    def on_chart(self, _w: Any, chart: list[dict[str, Any]]) -> None:
        box = self.ids.chart_box
        box.clear_widgets()
        top = max([1] + [c["sent"] + c["received"] for c in chart])
        for c in chart:
            box.add_widget(make("DayBar", peak=top, **c))


class SettingsScreen(Screen):
    me = StringProperty("")
    members = ListProperty([])
    quiet_for = StringProperty("")
    quiet_choices = ListProperty([])
    school_days = StringProperty("")
    school = StringProperty("")
    home = StringProperty("")
    overrides = StringProperty("")
    low_battery = NumericProperty(20)

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        view = snap.settings
        self.me = snap.me
        self.members = members
        chosen = view.quiet_for != self.quiet_for
        self.quiet_choices = list(view.quiet_choices)
        self.quiet_for = view.quiet_for
        self.school_days = view.school_days
        self.school = view.school
        self.home = view.home
        self.overrides = view.overrides
        self.low_battery = view.low_battery_percent
        if chosen:  # another person's quiet hours: their fields, whatever was typed before
            ids = self.ids
            ids.school_days_input.text = view.school_days
            ids.school_input.text = view.school
            ids.home_input.text = view.home
            ids.overrides_input.text = view.overrides

    def confirm_hub(self) -> None:
        make("HubModePopup", hug_view=view_of(self)).open()

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.signatures_box
        box.clear_widgets()
        for m in members:
            box.add_widget(
                make("SignatureRow", member_id=m["member_id"], name=m["name"], signature=m["signature"])
            )


class ChildScreen(Screen):
    members = ListProperty([])
    last_hugs = ListProperty([])
    asking_pin = BooleanProperty(False)

    def show(self, snap: Snapshot, members: list[dict[str, Any]]) -> None:
        self.members = members
        self.last_hugs = [f"{r.when}  {r.text}" for r in snap.history.rows[:3]]

    def on_members(self, _w: Any, members: list[dict[str, Any]]) -> None:
        box = self.ids.faces_box
        box.clear_widgets()
        for m in members:
            box.add_widget(make("Face", name=m["name"], initial=m["initial"], online=bool(m["online"])))
