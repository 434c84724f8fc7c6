from allyapi.cli import main

main()
