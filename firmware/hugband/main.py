"""Entry point on the band: MicroPython runs /main.py after boot."""


def main() -> None:
    from hugband import app

    app.run()


if __name__ == "__main__":
    main()
