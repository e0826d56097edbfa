from byok_core.cli import main

raise SystemExit(main())
