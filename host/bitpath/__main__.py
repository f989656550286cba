from bitpath.cli import main

main()
