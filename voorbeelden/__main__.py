from voorbeelden.cli import main

raise SystemExit(main())
