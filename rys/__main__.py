from rys.cli import main

main()
