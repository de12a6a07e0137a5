from ari_controller.simulator.cli import main

main()
