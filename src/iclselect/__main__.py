from iclselect.cli import app

app(prog_name="iclselect")
