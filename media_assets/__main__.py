from media_assets.cli import exit_now, main

exit_now(main())
