"""The companion's development wing: the demo, the demo UI, the virtual band's window and the wiring
that puts the simulated radio (``hugsim``) under the app. The only part of ``hugapp`` that imports
``hugsim``; the Android build leaves it out (buildozer.spec, checked by tests/app/ui/test_buildozer_spec.py).
"""
