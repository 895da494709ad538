from iclselect.cli.main import app

app(prog_name="iclselect")
