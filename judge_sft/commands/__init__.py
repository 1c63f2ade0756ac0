"""One module per `judge-sft` subcommand: `add_arguments(parser)` and `main(args) -> int`. They parse, call the
library and print; the library never imports them."""
