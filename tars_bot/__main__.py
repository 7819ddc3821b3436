from tars_bot.cli import main

raise SystemExit(main())
