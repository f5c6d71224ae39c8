from launcher import interrupt

interrupt.take_over()  # before anything heavy is imported: see launcher/interrupt.py

from launcher.cli.main import main  # noqa: E402

main()
