from socp.cli.main import main

main()
