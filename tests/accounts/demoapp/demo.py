calls: list = []


def seed(*, stdout) -> None:
    calls.append(stdout)
    stdout.write("demoapp seeded")
