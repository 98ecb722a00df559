"""wsconsole.console: the operator side: control-plane client, CLI and Textual console."""
